"""Checklist items as declarations: each item is one decorated evaluator.

An item is declared once, with everything the scorecard shows about it::

    @checklist_item(id="dep.config_separate", title="Config separate from code ...",
                    severity="medium", area="reliability", checklist="deployment")
    def config_separate(ctx: Context) -> ItemResult:
        ...
        return ItemResult("pass", evidence)

The evaluator reads the review's evidence (:class:`~labkit.readiness.context.Context`)
and returns the status, the evidence text and the action that would close the item;
id, title, severity, area and checklist come from the declaration. An evaluator may
return ``None`` when the item does not apply to the review (it is then left out).

Two more kinds of declaration:

* :func:`checklist_family` — items whose ids come from the evidence (one ``slo.<name>``
  item per SLO in the SLO file); the evaluator returns :class:`FamilyItem` rows;
* :func:`composite_item` — an item summarising others (the deployment checklist); it
  is worked out after attestations, from its parts (:func:`labkit.readiness.model.composite`).

The built-in items are declared in :mod:`labkit.readiness.checks`, one module per area;
items are evaluated in declaration order, which is the order the scorecard lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labkit.readiness.model import AREAS, SEVERITIES, STATUSES, CheckItem, composite, item

if TYPE_CHECKING:
    from labkit.readiness.context import Context


@dataclass(frozen=True)
class ItemResult:
    """What an evaluator found: the status, its evidence and the action that closes the item.

    The action is dropped when the item passes."""

    status: str
    evidence: str
    action: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"bad status {self.status!r}")


Evaluator = Callable[["Context"], ItemResult | None]


@dataclass(frozen=True)
class ItemSpec:
    """The declaration of one checklist item."""

    id: str
    title: str
    severity: str
    area: str
    checklist: str
    evaluate: Evaluator
    source: str = "automated"  # automated | manual (only an attestation can settle it)

    def run(self, ctx: Context) -> list[CheckItem]:
        res = self.evaluate(ctx)
        if res is None:
            return []
        return [item(self.id, area=self.area, checklist=self.checklist, title=self.title, status=res.status,
                     evidence=res.evidence, action=res.action, severity=self.severity, source=self.source)]


@dataclass(frozen=True)
class FamilyItem:
    """One item of a family: its id, title and severity come from the evidence."""

    id: str
    title: str
    severity: str
    result: ItemResult


@dataclass(frozen=True)
class FamilySpec:
    """Items declared by the evidence (``slo.<name>`` for each SLO of the SLO file)."""

    id: str  # how its ids read, e.g. "slo.<name>"
    area: str
    checklist: str
    evaluate: Callable[[Context], list[FamilyItem]]

    def run(self, ctx: Context) -> list[CheckItem]:
        return [item(f.id, area=self.area, checklist=self.checklist, title=f.title, status=f.result.status,
                     evidence=f.result.evidence, action=f.result.action, severity=f.severity)
                for f in self.evaluate(ctx)]


@dataclass(frozen=True)
class CompositeSpec:
    """An item summarising others: the worst status of its parts (see :func:`composite`)."""

    id: str
    title: str
    severity: str
    area: str
    checklist: str
    parts: tuple[str, ...]

    def summarise(self, by_id: dict[str, CheckItem]) -> CheckItem:
        return composite(self.id, area=self.area, checklist=self.checklist, title=self.title,
                         parts=[by_id[i] for i in self.parts if i in by_id], severity=self.severity)


class Registry:
    """The declared items, in declaration order."""

    def __init__(self) -> None:
        self._items: dict[str, ItemSpec | FamilySpec] = {}
        self._composites: dict[str, CompositeSpec] = {}

    def add(self, spec: ItemSpec | FamilySpec | CompositeSpec) -> None:
        if spec.id in self._items or spec.id in self._composites:
            raise ValueError(f"checklist item {spec.id!r} is declared twice")
        if spec.area not in AREAS:
            raise ValueError(f"item {spec.id!r}: unknown area {spec.area!r} (known: {', '.join(AREAS)})")
        if not isinstance(spec, FamilySpec) and spec.severity not in SEVERITIES:
            raise ValueError(f"item {spec.id!r}: bad severity {spec.severity!r} (known: {', '.join(SEVERITIES)})")
        if isinstance(spec, CompositeSpec):
            self._composites[spec.id] = spec
        else:
            self._items[spec.id] = spec

    def remove(self, id: str) -> None:
        """Forget a declaration (an item added for one review, or in a test)."""
        self._items.pop(id, None)
        self._composites.pop(id, None)

    def __iter__(self) -> Iterator[ItemSpec | FamilySpec]:
        return iter(list(self._items.values()))

    def __contains__(self, id: object) -> bool:
        return id in self._items or id in self._composites

    def get(self, id: str) -> ItemSpec | FamilySpec | CompositeSpec | None:
        return self._items.get(id) or self._composites.get(id)

    @property
    def composites(self) -> list[CompositeSpec]:
        return list(self._composites.values())

    @property
    def manual_ids(self) -> tuple[str, ...]:
        """Items only an attestation can settle."""
        return tuple(s.id for s in self._items.values() if isinstance(s, ItemSpec) and s.source == "manual")

    def evaluate(self, ctx: Context) -> list[CheckItem]:
        """Every declared item (composites excepted) on the review's evidence."""
        out: list[CheckItem] = []
        for spec in self:
            out.extend(spec.run(ctx))
        return out

    def summarise(self, items: list[CheckItem]) -> list[CheckItem]:
        """The composite items over ``items`` (after attestations are applied)."""
        by_id = {i.id: i for i in items}
        return [c.summarise(by_id) for c in self.composites]


#: the items of every review; :mod:`labkit.readiness.checks` declares the built-in ones
REGISTRY = Registry()


def checklist_item(
    *,
    id: str,
    title: str,
    severity: str,
    area: str,
    checklist: str,
    source: str = "automated",
    registry: Registry | None = None,
) -> Callable[[Evaluator], Evaluator]:
    """Declare the decorated function ``(ctx) -> ItemResult | None`` as the evaluator of an item."""

    def deco(fn: Evaluator) -> Evaluator:
        (registry or REGISTRY).add(ItemSpec(id, title, severity, area, checklist, fn, source))
        return fn

    return deco


def checklist_family(
    *, id: str, area: str, checklist: str, registry: Registry | None = None
) -> Callable[[Callable[[Context], list[FamilyItem]]], Callable[[Context], list[FamilyItem]]]:
    """Declare the decorated function ``(ctx) -> list[FamilyItem]`` as a family of items."""

    def deco(fn: Callable[[Context], list[FamilyItem]]) -> Callable[[Context], list[FamilyItem]]:
        (registry or REGISTRY).add(FamilySpec(id, area, checklist, fn))
        return fn

    return deco


def composite_item(
    *,
    id: str,
    title: str,
    severity: str,
    area: str,
    checklist: str,
    parts: tuple[str, ...],
    registry: Registry | None = None,
) -> CompositeSpec:
    """Declare an item summarising ``parts`` (worked out after attestations)."""
    spec = CompositeSpec(id, title, severity, area, checklist, tuple(parts))
    (registry or REGISTRY).add(spec)
    return spec
