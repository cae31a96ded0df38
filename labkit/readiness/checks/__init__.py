"""The built-in checklist items, one declaration each, one module per area.

Importing this package declares them in :data:`labkit.readiness.items.REGISTRY`, in the
order the scorecard lists them (:data:`AREA_MODULES`):

* :mod:`~labkit.readiness.checks.evaluation` — evaluation coverage, ``eval.*``;
* :mod:`~labkit.readiness.checks.release_gate` — release gate, ``gate.*``;
* :mod:`~labkit.readiness.checks.safety` — safety (the middleware checklist), ``mw.*``;
* :mod:`~labkit.readiness.checks.reliability` — reliability, ``rel.*``;
* :mod:`~labkit.readiness.checks.deployment` — ``dep.*`` (area reliability) and the composite
  items of the deployment checklist;
* :mod:`~labkit.readiness.checks.observability` — observability, ``obs.*``;
* :mod:`~labkit.readiness.checks.incident` — incident readiness, ``inc.*``;
* :mod:`~labkit.readiness.checks.slo_rollout` — SLOs and rollout, ``slo.*`` and ``rollout.*``.

The thresholds of the automated rules are :data:`labkit.readiness.checks.common.RULES`.
"""

from __future__ import annotations

import importlib

#: the area modules, in the order the scorecard lists their items
AREA_MODULES = ("evaluation", "release_gate", "safety", "reliability", "deployment", "observability", "incident",
                "slo_rollout")

for _name in AREA_MODULES:
    importlib.import_module(f"{__name__}.{_name}")
