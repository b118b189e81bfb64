#!/usr/bin/env python
"""Django's command-line utility for the example blog.

Run it over a local lab with the blog's tables (from the repository's root)::

    make example-django PORT=8000
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "blogsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
