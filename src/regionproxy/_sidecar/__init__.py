"""The sidecar: a local endpoint that speaks DynamoDB's JSON protocol, so
apps in any language (PHP, Node, the AWS CLI) get the session.

- :mod:`~regionproxy._sidecar.signatures`: who may call it (SigV4 checked
  against local client keys, before anything else);
- :mod:`~regionproxy._sidecar.protocol`: the WSGI app: a DynamoDB request
  in, routed through a :class:`~regionproxy.RegionSession`, DynamoDB's
  answer out; mounted under the middleware's health, status and metrics
  paths (:func:`~regionproxy._sidecar.protocol.sidecar_app`);
- :mod:`~regionproxy._sidecar.serve`: ``regionproxy serve``: gunicorn, or
  a threaded development server.
"""
