"""The web surface: the WSGI middleware, its options, health and admin endpoints, access checks, metrics, the status page."""
