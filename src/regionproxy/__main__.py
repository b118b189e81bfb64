"""``python -m regionproxy``: the same as the ``regionproxy`` command."""

import sys

from regionproxy.cli import main

sys.exit(main())
