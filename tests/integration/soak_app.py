"""The Flask blog example (``examples/flask_blog``) as the soak runs it
under gunicorn: unchanged, except that the lab's host names resolve in
every worker (installed here, before the fork, from the variables the lab
gave: ``LocalRegions.resolver_environment``), so the soak can make the
local region's name stop resolving."""

import sys
from pathlib import Path

from regionproxy.testing import resolver

resolver.install_from_env()

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "flask_blog"))

from app import create_app  # noqa: E402

application = create_app()
