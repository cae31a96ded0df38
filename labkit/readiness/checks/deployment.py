"""Deployment — ``dep.*``: the config a run was built from, the two attestation-only items, and
the composite items of the deployment checklist (Day 19), which summarise items of the other
areas and are not counted twice."""

from __future__ import annotations

from labkit.readiness.context import Context
from labkit.readiness.items import ItemResult, checklist_item, composite_item

AREA, CHECKLIST = "reliability", "deployment"


@checklist_item(id="dep.config_separate", title="Config separate from code (run reproducible from its config file)",
                severity="medium", area=AREA, checklist=CHECKLIST)
def config_separate(ctx: Context) -> ItemResult:
    cand = ctx.candidate
    cc = ctx.candidate_config()
    if cand is None:
        return ItemResult("unknown", "no candidate run", "Run the candidate from a YAML config.")
    if cc is None or cc.config is None:
        kind = cand.config.get("type")
        return ItemResult("fail", f"run {cand.run_id} was built from "
                          + (f"an import path ({cand.config.get('callable')})" if kind == "callable"
                             else "no config file found under " + str(ctx.paths.pipelines_dir)),
                          "Describe the pipeline in a YAML config (model, prompt version, retrieval and runner "
                          "settings) kept under version control beside, not inside, the code.")
    from labkit.errors import LabkitError
    from labkit.runner.ensure import config_file_hash

    corpus_dir = cand.pipeline.get("corpus_dir")
    try:
        now = config_file_hash(cc.path, corpus_dir=corpus_dir if isinstance(corpus_dir, str) else None)
    except LabkitError as e:
        return ItemResult("fail", f"run {cand.run_id} built from {cc.name}, which no longer loads: {e}",
                          f"Fix {cc.name} so the candidate can be rebuilt from it.")
    recorded = cand.config_hash
    return ItemResult("pass" if recorded == now else "fail",
                      f"run {cand.run_id} built from {cc.name}; config hash recorded {recorded}, file now {now}",
                      f"{cc.name} changed after run {cand.run_id}: re-run the candidate so the evidence matches the "
                      "config that would ship.")


@checklist_item(id="dep.least_privilege", title="Least-privilege access for the service identity", severity="high",
                area=AREA, checklist=CHECKLIST, source="manual")
def least_privilege(ctx: Context) -> ItemResult:
    return ItemResult("unknown", "not readable from artifacts: the access roles live in the deployment platform",
                      f"Review the service identity's roles and attest it in {ctx.paths.attestations}.")


@checklist_item(id="dep.secret_manager", title="Secrets are stored in a secret manager", severity="high",
                area=AREA, checklist=CHECKLIST, source="manual")
def secret_manager(ctx: Context) -> ItemResult:
    return ItemResult("unknown", "not readable from artifacts: configs name environment variables; where their "
                      "values come from is a deployment fact",
                      f"Store the keys in the secret manager, inject them as environment variables, and attest it "
                      f"in {ctx.paths.attestations}.")


composite_item(id="dep.secrets", title="Secrets management and least-privilege access", severity="critical",
               area=AREA, checklist=CHECKLIST, parts=("rel.secrets", "dep.secret_manager", "dep.least_privilege"))
composite_item(id="dep.timeout_retry_fallback", title="Timeout, retry and fallback strategy", severity="high",
               area=AREA, checklist=CHECKLIST, parts=("rel.timeout_retry", "rel.fallback", "rel.idempotency"))
composite_item(id="dep.config", title="Config separation from code", severity="medium", area=AREA,
               checklist=CHECKLIST, parts=("dep.config_separate",))
composite_item(id="dep.rollback_and_gates", title="Rollback plan and release gates", severity="critical",
               area=AREA, checklist=CHECKLIST,
               parts=("gate.locked", "gate.passes", "rollout.rollback_plan", "inc.rollback_drill"))
