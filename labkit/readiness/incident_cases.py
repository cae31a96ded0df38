"""The regression cases an incident review proposes (:mod:`labkit.readiness.incident`), and the
failing cases it does not propose, each with its reason.

* Each case failing in the failing run becomes ``reg-<id>``, its free text (question, reference
  answer, tags, metadata) redacted as every file labkit writes is.
* Redaction never changes what is scored: a case whose scored labels (:data:`LABEL_FIELDS`) hold
  what redaction hides is not proposed (masked labels test something else; raw ones would put
  the secret on disk). It is named, with the field, for a person to add from the dataset.
* A failing case that is itself a regression case, or whose ``reg-<id>`` the dataset already
  holds, is not proposed again (no ``reg-reg-<id>``, no id twice once merged).
* The dataset's cases with no result line in the failing run (recorded traffic covering part of
  it) are named, not proposed: there is no failure to reproduce, only a case left unmeasured.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.cases import EvalCase, load_cases
from labkit.errors import LabkitError
from labkit.readiness.runview import RunView

#: the fields of a case that scoring reads as labels: redaction must leave them as they are
LABEL_FIELDS = ("must_include", "must_not_include", "expected_source", "expected_chunks", "expected_tools")
#: how many case ids a sentence of the note names before it says how many more
NAMED = 20


def load_dataset(run: RunView, dataset: str | os.PathLike[str] | None) -> tuple[dict[str, EvalCase], str]:
    """The cases by id (and the path) of ``dataset``, else the run's own dataset; ({}, "") if none loads."""
    tries: list[Path] = []
    if dataset is not None:
        tries.append(Path(dataset))
    p = run.dataset_info.get("path")
    if isinstance(p, str):
        tries.append(Path(p))
    tries.append(run.path / "cases.jsonl")
    for t in tries:
        if t.is_file():
            try:
                return load_cases(t).by_id(), str(t)
            except LabkitError:
                continue
    return {}, ""


def failure_reasons(run: RunView, case_id: str) -> list[str]:
    """The ``<metric>_reason`` values of a case's scores row, as ``metric: reason``."""
    for row in run.scores:
        if row.get("case_id") != case_id:
            continue
        out = []
        for k, v in row.items():
            if k.endswith("_reason") and v:
                out.append(f"{k[:-7]}: {v}")
        return out
    return []


def case_stage(base: RunView, var: RunView, cid: str, result: Mapping[str, Any] | None) -> str:
    """Which stage a regressed case lost its answer at (first stage, in pipeline order, that got worse)."""
    if result is not None and str(result.get("status")) in ("error", "timeout"):
        return "ops"

    def v(run: RunView, m: str) -> float | None:
        return run.score_column(m).get(cid)

    def worse(m: str, higher: bool = True) -> bool:
        a, b = v(base, m), v(var, m)
        if a is None or b is None:
            return False
        return b < a if higher else b > a

    if worse("retrieval_hit_rate") or worse("recall_at_k"):
        return "retrieval"
    if worse("must_include_coverage") or worse("faithfulness") or worse("must_not_include_violation", False) \
            or worse("citation_accuracy"):
        return "generation"
    if worse("tool_call_accuracy"):
        return "agent"
    return "unattributed"


def is_regression_case(case: EvalCase) -> bool:
    """A case proposed by an earlier review (or written as one): ``reg-`` id, kind or source case."""
    return case.id.startswith("reg-") or case.kind == "regression" or "source_case" in case.metadata


def named(ids: Sequence[str]) -> str:
    """``a, b, c`` — at most :data:`NAMED` ids, then how many more."""
    more = f" and {len(ids) - NAMED} more" if len(ids) > NAMED else ""
    return ", ".join(ids[:NAMED]) + more


@dataclass
class Proposal:
    """The proposed cases and, by reason, the failing cases not proposed."""

    dataset_path: str
    cases: list[EvalCase] = field(default_factory=list)
    held_back: dict[str, list[str]] = field(default_factory=dict)  # case id -> labels redaction would change
    already_regression: list[str] = field(default_factory=list)  # failing cases that are regression cases
    already_proposed: list[str] = field(default_factory=list)  # failing cases whose reg-<id> is in the dataset
    not_in_dataset: list[str] = field(default_factory=list)
    no_result: list[str] = field(default_factory=list)  # dataset cases with no result in the failing run
    uncounted_missing: int = 0  # cases the failing run's metrics count missing, with no dataset to name them

    @property
    def not_proposed(self) -> list[str]:
        return [*self.held_back, *self.already_regression, *self.already_proposed, *self.not_in_dataset]

    def notes(self) -> list[str]:
        ds = self.dataset_path or "none found"
        out = [f"case {cid} not proposed: its {' and '.join(f)} {'holds' if len(f) == 1 else 'hold'} what "
               f"redaction hides; add it from the dataset ({ds}) by hand" for cid, f in self.held_back.items()]
        if self.already_regression:
            out.append(f"{len(self.already_regression)} failing case(s) not proposed again: already regression "
                       f"cases (reg- id, kind regression or metadata source_case): {named(self.already_regression)}")
        if self.already_proposed:
            out.append(f"{len(self.already_proposed)} failing case(s) not proposed: their reg-<id> is already in "
                       f"the dataset ({ds}): {named(self.already_proposed)}")
        if self.not_in_dataset:
            out.append(f"{len(self.not_in_dataset)} failed case(s) not found in the dataset ({ds}): "
                       + named(self.not_in_dataset))
        if self.no_result:
            out.append(f"{len(self.no_result)} case(s) of the dataset ({ds}) have no result in the failing run: "
                       f"unmeasured, not proposed (no failure to reproduce): {named(self.no_result)}")
        if self.uncounted_missing:
            out.append(f"the failing run's metrics count {self.uncounted_missing} case(s) with no result; no "
                       "dataset was found to name them (give --dataset)")
        return out


def _proposed(orig: EvalCase, base: RunView, var: RunView, *, regressed: bool,
              result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The case as ``reg-<id>``, tagged and with the review's metadata (not yet redacted)."""
    cid = orig.id
    cd = orig.to_dict()
    cd["id"] = f"reg-{cid}"
    cd["tags"] = {**dict(orig.tags), "kind": "regression", "origin_kind": orig.kind or "unknown"}
    cd["metadata"] = {**dict(orig.metadata), "source_case": cid, "failing_run": var.run_id,
                      "baseline_run": base.run_id, "regressed": regressed,
                      "stage": case_stage(base, var, cid, result) if regressed else "failed in both runs",
                      "reasons": failure_reasons(var, cid), "proposed": dt.date.today().isoformat()}
    return cd


def propose_cases(base: RunView, var: RunView, *, failed: Sequence[str], regressed: Sequence[str],
                  results: Mapping[str, Mapping[str, Any]],
                  dataset: str | os.PathLike[str] | None) -> Proposal:
    """Each case failing in ``var`` as a proposed ``reg-<id>`` case, the flipped ones first."""
    from labkit.runs import RunDir, record_redactor

    red = record_redactor(RunDir(var.path).redaction)  # (and the failing run's own extra patterns)
    cases_by_id, ds_path = load_dataset(var, dataset)
    prop = Proposal(dataset_path=ds_path)
    flipped = set(regressed)
    for cid in sorted(failed, key=lambda c: (c not in flipped, c)):
        orig = cases_by_id.get(cid)
        if orig is None:
            prop.not_in_dataset.append(cid)
        elif is_regression_case(orig):
            prop.already_regression.append(cid)
        elif f"reg-{cid}" in cases_by_id:
            prop.already_proposed.append(cid)
        else:
            cd = _proposed(orig, base, var, regressed=cid in flipped, result=results.get(cid))
            masked = red.redact(cd)
            changed = [f for f in LABEL_FIELDS if masked.get(f) != cd.get(f)]
            if changed:
                prop.held_back[cid] = changed
            else:
                prop.cases.append(EvalCase.from_dict(masked))
    if var.results and cases_by_id:
        prop.no_result = sorted(set(cases_by_id) - set(results))
    elif var.results:
        n = var.metrics_doc.get("n_missing")
        prop.uncounted_missing = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0
    return prop
