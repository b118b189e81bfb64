"""Settings of the example Django blog.

regionproxy adds two things (marked): the middleware entry (first, so that
health probes are answered before anything else runs) with its app for the
system check, and the ``REGIONPROXY`` dict, here read from the environment.
``blogsite.middleware`` (last) answers a 503 page when no region can serve.

Over a local lab with the blog's tables (from the repository's root)::

    make example-django PORT=8000
    # or: regionproxy lab --example blog -- python examples/django_blog/manage.py runserver --noreload 127.0.0.1:8000
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR.parent))  # the shared blog model (examples/blog)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]
ROOT_URLCONF = "blogsite.urls"
WSGI_APPLICATION = "blogsite.wsgi.application"
USE_TZ = True
DATABASES: dict = {}  # the blog's data is in DynamoDB

INSTALLED_APPS = ["regionproxy.contrib.django"]  # regionproxy: the settings check
MIDDLEWARE = [
    "regionproxy.contrib.django.RegionProxyMiddleware",  # regionproxy, line 1 of 2
    "django.middleware.common.CommonMiddleware",
    "blogsite.middleware.RegionOutageMiddleware",  # 503 + Retry-After when every region is down
]
REGIONPROXY = {  # regionproxy, line 2 of 2
    "REGIONS": os.environ.get("REGIONPROXY_REGIONS", "eu-west-3,us-east-1"),
    "ENDPOINTS": os.environ.get("REGIONPROXY_ENDPOINTS", ""),
    "READINESS": "evacuate",
}
