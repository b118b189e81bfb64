"""``regionproxy evacuate REGION`` and ``regionproxy restore REGION``: act on
a whole fleet from a shell, through its Redis.

The fleet is the one the app's own settings name: ``REGIONPROXY_FLEET_URL``
(or ``--fleet``), ``REGIONPROXY_FLEET_NAME`` (or ``--fleet-name``; by
default derived from ``REGIONPROXY_REGIONS`` and the tables named, as the
app derives it). The action is kept in Redis until the opposite one, and
every worker of the fleet applies it within milliseconds; the status page
shows who acted (``--by``, by default ``cli user@host``) and when.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import time
from collections.abc import Mapping

from regionproxy._config.environment import settings_from_env
from regionproxy._fleet.breakers import action_record, send_action
from regionproxy._fleet.link import FleetLink
from regionproxy.errors import ConfigError

# Interactive: a Redis across a network may take longer than a worker's 50 ms.
CLI_TIMEOUT = 2.0


def act(
    action: str,
    region: str,
    *,
    fleet: str | None = None,
    fleet_name: str | None = None,
    by: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Evacuate or restore ``region`` in the fleet; 0 once Redis has it, 1 if
    it could not be sent (nothing changed)."""
    overrides = {name: value for name, value in (("fleet", fleet), ("fleet_name", fleet_name)) if value is not None}
    settings = settings_from_env(os.environ if environ is None else environ, **overrides)
    if settings.fleet is None or settings.fleet_name is None:
        raise ConfigError("no fleet: set REGIONPROXY_FLEET_URL (or pass --fleet redis://...)", setting="fleet")
    if region not in settings.regions:
        raise ConfigError(f"{region!r} is not one of the fleet's regions {list(settings.regions)}", setting="region")
    link = FleetLink(settings.fleet, settings.fleet_name, timeout=max(settings.fleet_timeout, CLI_TIMEOUT), heartbeat=0)
    try:
        record = action_record(action, by or _who(), time.time(), link.member)
        if not send_action(link, region, record):
            print(f"regionproxy: {action} {region}: {link.safe_url} did not take it ({link.last_error})", file=sys.stderr)
            return 1
    finally:
        link.close()
    done = "evacuated" if action == "evacuate" else "restored"
    print(f"{region} {done} in fleet {settings.fleet_name} ({link.safe_url}) by {record['by']}")
    return 0


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        user = "unknown"
    return f"cli {user}@{socket.gethostname()}"
