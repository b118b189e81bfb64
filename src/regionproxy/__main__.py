"""``python -m regionproxy``: the same as the ``regionproxy`` command."""

import sys

from regionproxy._cli.main import main

sys.exit(main())
