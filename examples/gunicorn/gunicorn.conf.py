"""gunicorn settings for an app wrapped by regionproxy, with Prometheus
multiprocess metrics (the recipe in docs/reference/metrics.md).

    PROMETHEUS_MULTIPROC_DIR=/run/app-metrics gunicorn -c gunicorn.conf.py --preload app:application

The variable must be set before prometheus_client is imported (so here, or
in the environment), and the directory emptied when gunicorn starts. This
file runs in the master before it imports the app (``--preload`` imports it
before the ``on_starting`` hook), so the emptying happens here, at load.

Counters and histograms of a dead worker keep counting in the sums (what it
served, it served). Its breaker-state gauge (``livemax``: the worst state
any live worker sees) must go: ``child_exit`` deletes its file.
"""

import os
import shutil

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/run/app-metrics")
# Samples of an earlier run must not count.
shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server, worker):
    """Drop a dead worker's live gauges (killed, crashed or recycled alike:
    the master runs this for every worker it reaps)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
