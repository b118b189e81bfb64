"""Latency profiles: the round trip from an app server to each AWS region.

No public table gives the latency from OVHcloud's sites to AWS regions, so
the built-in profiles are *derived*, and say so:

    rtt_ms = FIXED_MS + distance_km / 100 * route_factor

- ``distance_km``: great circle between the OVHcloud site and the AWS
  region's metro (coordinates below; AWS does not publish data-centre
  locations, so the metro is used).
- 1 ms of round trip per 100 km of fibre: light in glass covers ~200 km per
  ms, and a round trip covers the distance twice.
- ``route_factor``: fibre does not follow great circles. 1.35 across the
  North Atlantic (few, long, fairly straight cables), 1.6 on land, where
  routes go through exchange points (Paris, Frankfurt, Amsterdam, London).
- ``FIXED_MS`` = 1.5: switching, the metro hops at both ends, and the
  region's front end.

Cross-check with published inter-city ping averages (WonderProxy, "Miles
per Millisecond", 2011; pings are round trips): Paris-New York 77 ms
(model 80), Paris-Baltimore 98 ms (model 84, Baltimore is near Ashburn,
us-east-1), Paris-Zurich 11 ms (model 9), Paris-Milan 21 ms (model 12: an
Alpine route far from the great circle). So the model is within about 15%
across the Atlantic and can be 2x low inside Europe where routes detour.
Uncertainty given with each figure: ``low``..``high`` is x0.8..x1.25 across
the Atlantic, x0.8..x2.0 on land. Jitter is taken as 3% of the round trip,
at least 0.3 ms (an assumption; measure yours).

What a lab region adds is one round trip *per request* (a kept-alive
HTTPS connection to DynamoDB pays one round trip per call), on top of
moto's own few milliseconds; see :mod:`regionproxy.testing.fault_proxy`.

Measure your own with ``regionproxy probe ... --json FILE`` and pass the
file to ``regionproxy bench --profile FILE``: it replaces these numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from regionproxy.errors import ConfigError

FIXED_MS = 1.5
ROUTE_FACTOR_LAND = 1.6
ROUTE_FACTOR_OCEAN = 1.35
DEFAULT_PROFILE = "GRA"


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    lat: float
    lon: float
    continent: str


# OVHcloud data-centre sites (town of the campus).
SITES = {
    "GRA": Place("Gravelines, France", 50.99, 2.13, "europe"),
    "RBX": Place("Roubaix, France", 50.69, 3.17, "europe"),
    "SBG": Place("Strasbourg, France", 48.58, 7.75, "europe"),
    "BHS": Place("Beauharnois, Quebec, Canada", 45.32, -73.87, "america"),
    "WAW": Place("Ozarow Mazowiecki (Warsaw), Poland", 52.21, 20.80, "europe"),
    "LIM": Place("Limburg an der Lahn, Germany", 50.39, 8.06, "europe"),
}
# AWS regions, by the metro they are named after.
REGIONS = {
    "eu-west-3": Place("Paris", 48.86, 2.35, "europe"),
    "eu-west-1": Place("Dublin", 53.35, -6.26, "europe"),
    "eu-central-1": Place("Frankfurt", 50.11, 8.68, "europe"),
    "us-east-1": Place("Ashburn, Virginia", 39.04, -77.49, "america"),
    "ca-central-1": Place("Montreal", 45.50, -73.57, "america"),
}


@dataclass(frozen=True, slots=True)
class RegionLatency:
    """The round trip to one region, in milliseconds: ``rtt_ms`` (what the
    lab injects per request), ``jitter_ms``, and the ``low_ms``..``high_ms``
    range the figure is believed to lie in; ``how`` says where it came from."""

    rtt_ms: float
    jitter_ms: float
    low_ms: float
    high_ms: float
    how: str

    @property
    def delay(self) -> float:
        return self.rtt_ms / 1000

    @property
    def jitter(self) -> float:
        return min(self.jitter_ms, self.rtt_ms) / 1000


@dataclass(frozen=True)
class LatencyProfile:
    """Round trips from one place (an OVHcloud site, or the host a probe
    ran on) to AWS regions."""

    name: str
    origin: str
    regions: dict[str, RegionLatency] = field(default_factory=dict)

    def by_distance(self) -> list[str]:
        return sorted(self.regions, key=lambda region: self.regions[region].rtt_ms)

    @property
    def local(self) -> str:
        """The nearest region: where the app's local replica would be."""
        return self.by_distance()[0]

    def nearest_remote(self) -> str:
        ordered = self.by_distance()
        return ordered[1] if len(ordered) > 1 else ordered[0]

    def far_remote(self) -> str:
        """``us-east-1`` when the profile has it (the usual second home of a
        European app), else the farthest region."""
        ordered = self.by_distance()
        if "us-east-1" in ordered and ordered[0] != "us-east-1":
            return "us-east-1"
        return ordered[-1] if len(ordered) > 1 else ordered[0]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "origin": self.origin, "regions": {k: asdict(v) for k, v in self.regions.items()}}


def distance_km(a: Place, b: Place) -> float:
    """Great-circle distance (haversine, Earth radius 6371 km)."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi, dlon = phi2 - phi1, math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlon / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(h))


def derive(site: str) -> LatencyProfile:
    """The derived profile from OVHcloud ``site`` (GRA, RBX, SBG, BHS, WAW, LIM)."""
    place = SITES.get(site.upper())
    if place is None:
        raise ConfigError(f"unknown OVHcloud site {site!r}; use one of {sorted(SITES)}", setting="profile")
    regions = {}
    for region, metro in REGIONS.items():
        km = distance_km(place, metro)
        ocean = place.continent != metro.continent
        factor = ROUTE_FACTOR_OCEAN if ocean else ROUTE_FACTOR_LAND
        rtt = FIXED_MS + km / 100 * factor
        low, high = (0.8, 1.25) if ocean else (0.8, 2.0)
        regions[region] = RegionLatency(
            rtt_ms=round(rtt, 1),
            jitter_ms=round(max(0.3, 0.03 * rtt), 1),
            low_ms=round(rtt * low, 1),
            high_ms=round(rtt * high, 1),
            how=f"derived: {km:.0f} km x {factor} / 100 + {FIXED_MS} ms",
        )
    return LatencyProfile(site.upper(), place.name, regions)


def from_probe(data: dict[str, Any], name: str) -> LatencyProfile:
    """A profile from ``regionproxy probe --json`` output: per region, the
    median GetItem if it was probed (DynamoDB's own time included), else
    the median HTTPS request on an open connection, else the TCP connect;
    jitter is p90 - p50 of the same phase."""
    regions = {}
    for region, result in data.get("regions", {}).items():
        phases = result.get("phases", {})
        for phase in ("getitem", "request", "connect"):
            summary = phases.get(phase) or {}
            if summary.get("count"):
                p50, p90 = summary["p50_ms"], summary["p90_ms"]
                regions[region] = RegionLatency(
                    rtt_ms=p50,
                    jitter_ms=round(max(p90 - p50, 0.0), 3),
                    low_ms=summary.get("min_ms", p50),
                    high_ms=summary.get("p99_ms", p90),
                    how=f"probe: {phase} p50 of {summary['count']} from {data.get('host', 'this host')}",
                )
                break
    if not regions:
        raise ConfigError(f"{name}: no region with a successful probe phase", setting="profile")
    return LatencyProfile(name, data.get("host", "probe"), regions)


def load(spec: str | None) -> LatencyProfile:
    """A built-in site name (``GRA``...), or a JSON file: ``probe --json``
    output, or a profile written by :meth:`LatencyProfile.to_json`."""
    spec = spec or DEFAULT_PROFILE
    if spec.upper() in SITES:
        return derive(spec)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"--profile {spec!r} is neither a site ({', '.join(SITES)}) nor a JSON file", setting="profile")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read profile {spec!r}: {error}", setting="profile") from error
    if data.get("kind") == "regionproxy-probe":
        return from_probe(data, path.name)
    try:
        regions = {region: RegionLatency(**values) for region, values in data["regions"].items()}
        return LatencyProfile(data.get("name", path.name), data.get("origin", "file"), regions)
    except (KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"profile {spec!r} is not a probe or profile JSON: {error}", setting="profile") from error


def table(profiles: list[LatencyProfile] | None = None) -> str:
    """Every built-in profile as a markdown table: rtt (low-high) ms."""
    profiles = profiles or [derive(site) for site in SITES]
    header = "| site | " + " | ".join(REGIONS) + " |"
    lines = [header, "|" + "---|" * (len(REGIONS) + 1)]
    for profile in profiles:
        cells = [
            f"{profile.regions[r].rtt_ms:g} ({profile.regions[r].low_ms:g}-{profile.regions[r].high_ms:g})" for r in REGIONS
        ]
        lines.append(f"| {profile.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
