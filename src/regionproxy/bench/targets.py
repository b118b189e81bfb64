"""The benchmark targets: each one judged on the figure a user would meet.

Rule: a target is judged on the figure a user of the library meets in
ordinary operation, never on a friendlier one measured beside it. So:

- the configuration judged is the one a user gets: ``HedgePolicy()``'s
  own delay, not a delay tuned to the scenario; the middleware's cost with
  every request calling DynamoDB (cache off), not with one hot key served
  from memory;
- a latency target is judged where the user meets it: in the drill, under
  the profile's jitter and beside other traffic, not in a measurement with
  jitter set to zero and one request at a time;
- the other figures are shown beside the judged one, each labelled with
  how it was measured; a figure that no run measured (a model, a published
  timing) says so; a figure with no target is reported, not judged.

A target is a JSON-ready dict made by :func:`target`; every scenario module
has a ``targets(result)`` function that judges its targets from the
scenario's figures alone (no timing, no I/O), so results written by one
run can be judged again (:func:`judge`) and rendered by
:mod:`regionproxy.bench.report`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

# The scenarios, in the order a run makes them (each a module of this package
# with a ``targets(result)`` function).
SCENARIOS = ("overhead", "failover", "tail", "quiet", "webapp", "sidecar")

# Verdicts, as the targets table writes them.
MET, NOT_MET, NOT_MEASURED, REPORTED = "met", "NOT met", "not measured", "reported (no target)"


def target(
    figure: str,
    goal: str | None,
    judged_on: str,
    value: str | None,
    met: bool | None,
    beside: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """One row of the targets table.

    :param figure: what is measured.
    :param goal: the target (``"<= 5 ms"``), or None for a figure that is
        reported, not judged.
    :param judged_on: the measurement the verdict comes from, named so a
        reader can find it in the scenario's section.
    :param value: the judged figure, or None when the run did not measure it.
    :param met: the verdict; None when not measured or not a target.
    :param beside: ``(how it was measured, figure)`` pairs shown next to
        the judged figure and not judged.
    """
    return {
        "figure": figure,
        "target": goal,
        "judged_on": judged_on,
        "value": value,
        "met": met if goal is not None and value is not None else None,
        "beside": [{"on": on, "value": shown} for on, shown in beside],
    }


def verdict(row: dict[str, Any]) -> str:
    if row.get("target") is None:
        return REPORTED
    return {True: MET, False: NOT_MET, None: NOT_MEASURED}[row.get("met")]


def judge(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` with every scenario's targets judged again from its
    figures (by the scenario module's ``targets``); a failed scenario, or
    one this version does not know, is left as it is."""
    for name, result in results["scenarios"].items():
        if "error" not in result and name in SCENARIOS:
            module = importlib.import_module(f"regionproxy.bench.{name}")
            result["targets"] = module.targets(result)
    return results
