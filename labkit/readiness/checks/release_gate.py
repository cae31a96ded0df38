"""Release gate — ``gate.*``: defined, locked, pre-registered before the run, passed by the
candidate, human review of high-risk cases."""

from __future__ import annotations

from typing import Any

from labkit.gate.report import failure_text
from labkit.readiness.context import Context
from labkit.readiness.items import ItemResult, checklist_item
from labkit.readiness.model import as_mapping

AREA, CHECKLIST = "release gate", "gate"


@checklist_item(id="gate.defined", title="Release gate defined with explicit thresholds", severity="critical",
                area=AREA, checklist=CHECKLIST)
def defined(ctx: Context) -> ItemResult:
    gp = ctx.paths.gate
    gate, gerr = ctx.gate()
    if gate is None:
        return ItemResult("fail", str(gerr), f"Write the gate config {gp} (quality, latency and cost thresholds).")
    from labkit.metrics import METRICS

    stages = sorted({METRICS[m].stage for m in gate.metrics if m in METRICS})
    ok = {"generation", "ops"}.issubset(stages) and len(gate.checks) > 0
    return ItemResult("pass" if ok else "fail",
                      f"{gp}: {len(gate.checks)} absolute, {len(gate.regression)} regression, "
                      f"{len(gate.slices)} slice check(s) over stages {', '.join(stages) or 'none'}",
                      f"Add quality (generation) and latency/cost (ops) thresholds to {gp}.")


@checklist_item(id="gate.locked", title="Gate pre-registered (locked) before testing the change", severity="high",
                area=AREA, checklist=CHECKLIST)
def locked(ctx: Context) -> ItemResult:
    gp = ctx.paths.gate
    info, lerr = ctx.lock_info()
    if info is None or not info.get("locked_at"):
        return ItemResult("fail", lerr or f"no lock file beside {gp}",
                          f"Lock the gate before the change is tested: labkit gate lock {gp}")
    if info.get("edited_after_lock"):
        return ItemResult("fail", f"{gp} edited after it was locked at {info['locked_at']} "
                          f"(hash {str(info['locked_hash'])[:12]} locked, {str(info['hash'])[:12]} now)",
                          f"Review the edit, then re-lock and re-run: labkit gate lock {gp}")
    return ItemResult("pass", f"{gp} locked at {info['locked_at']}, hash {str(info['hash'])[:12]} unchanged since")


def _preregistration_problems(rec: Any, created: str | None, current_hash: Any, *, manifest: str) -> list[str]:
    from labkit.errors import ConfigError
    from labkit.prereg import locked_after

    problems = []
    try:
        if created and locked_after(rec["locked_at"], created, lock_from=manifest, run_from=manifest,
                                    lock_field="gate.locked_at"):
            problems.append(f"locked at {rec['locked_at']}, after the run started at {created}")
    except ConfigError as e:
        problems.append(str(e))
    if current_hash and rec.get("hash") and rec["hash"] != current_hash:
        problems.append(f"gate changed since the run (run {str(rec['hash'])[:12]}, now {str(current_hash)[:12]})")
    return problems


@checklist_item(id="gate.preregistered", title="Candidate run judged by the gate it was locked under",
                severity="medium", area=AREA, checklist=CHECKLIST)
def preregistered(ctx: Context) -> ItemResult:
    cand = ctx.candidate
    if cand is None:
        return ItemResult("unknown", "no candidate run", "Run the candidate after locking the gate.")
    rec = as_mapping(cand.manifest.get("gate"))
    created = cand.created_at
    if not rec or not rec.get("locked_at"):
        return ItemResult("fail", f"manifest of {cand.run_id} records no locked gate",
                          "Lock the gate, then re-run the candidate so its manifest records the lock.")
    info, _ = ctx.lock_info()
    problems = _preregistration_problems(rec, created, (info or {}).get("hash"),
                                         manifest=str(cand.path / "manifest.json"))
    if not problems and created is None:  # (labkit gate's own check: unverifiable)
        return ItemResult("unknown", f"run {cand.run_id} records no start time (created_at): nothing shows gate "
                          f"{str(rec.get('hash'))[:12]}, locked at {rec['locked_at']}, came before it",
                          "Re-run the candidate under the locked gate: labkit run records when a run starts.")
    return ItemResult("fail" if problems else "pass",
                      "; ".join(problems) or f"run {cand.run_id} at {created} recorded gate "
                      f"{str(rec.get('hash'))[:12]} locked at {rec['locked_at']}",
                      "Re-run the candidate under the current, locked gate.")


@checklist_item(id="gate.passes", title="Candidate passes the release gate", severity="critical", area=AREA,
                checklist=CHECKLIST)
def passes(ctx: Context) -> ItemResult:
    rep, rerr = ctx.gate_report()
    if rep is None:
        return ItemResult("unknown", str(rerr),
                          "Score the candidate and evaluate the gate (labkit gate --config GATE RUN).")
    checks = [c for c in rep.checks if c.kind != "review"]  # (the review has its own item; a gate changed
    # after the run fails here as it fails the gate)
    failed = [c for c in checks if not c.passed]
    ev = f"{len(checks) - len(failed)}/{len(checks)} checks pass on run {rep.run_id}"
    if failed:
        ev += "; failed: " + "; ".join(failure_text(c) for c in failed)
    return ItemResult("fail" if failed else "pass", ev,
                      "Fix the failing checks (" + ", ".join(c.name for c in failed) + ") and re-run; "
                      "do not loosen a locked gate to pass.")


@checklist_item(id="gate.human_review", title="High-risk cases reviewed by a human", severity="high", area=AREA,
                checklist=CHECKLIST)
def human_review(ctx: Context) -> ItemResult:
    gp = ctx.paths.gate
    rep, rerr = ctx.gate_report()
    if rep is None:
        return ItemResult("unknown", str(rerr), "Record human reviews of the high-risk cases.")
    review = [c for c in rep.checks if c.kind == "review"]
    if not review:
        return ItemResult("fail", f"{gp} has no review requirement (review.required_for)",
                          f"Add `review: {{required_for: {{risk: high}}}}` to {gp} (a stricter gate: lock it again "
                          f"with `labkit gate lock {gp}` and re-run the candidate under it) and record reviews "
                          f"in {ctx.paths.reviews}.")
    c = review[0]
    return ItemResult("pass" if c.passed else "fail", f"{c.name}: {c.reason}",
                      f"Have a reviewer approve the missing cases: `labkit review RUN_DIR --gate {gp}` "
                      f"lists them and records each decision in {ctx.paths.reviews} (or notebook 07).")
