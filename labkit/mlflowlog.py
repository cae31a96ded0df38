"""A labkit run logged to MLflow (optional extra ``mlflow``; docs/mlflow.md).

One MLflow run per labkit run, found again by the tag ``labkit.run_uuid`` (the
manifest's ``run_uuid``, :attr:`labkit.runs.RunDir.run_uuid`), so logging a run
twice leaves one MLflow run: a run already logged with the same scored files (and
the same gate, baseline and reports) is left as it is; one re-scored since is
logged afresh and the stale MLflow run deleted. What is logged:

- parameters: the pipeline config (``pipeline.*``), the runner settings
  (``runner.*``), the dataset fingerprint, path and size (``dataset.*``), the gate
  and its lock (``gate.*``), labkit's version and the commit;
- metrics: every metric of metrics.json with its interval bounds and counts
  (``<metric>``, ``<metric>.ci_low``, ``<metric>.ci_high``, ``<metric>.n``,
  ``<metric>.unmeasured``); an unmeasured metric logs no value (no NaN) and is
  named in the tag ``labkit.unmeasured``;
- the per-case scores (scores.csv) as an MLflow table ``scores.json``;
- the gate verdict as tags ``labkit.gate.verdict`` (pass | fail), ``labkit.gate.name``
  and ``labkit.gate.mode`` (full | thresholds_only), with the gate report
  (``gate/gate.md``, ``gate/gate.json``);
- the run's files under ``run/`` and HTML reports given under ``reports/``.

Everything goes through the redaction first (the run's files were redacted when
written; parameters and tags are redacted again before they leave).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, MissingDependencyError, RunDirError

__all__ = ["DEFAULT_EXPERIMENT", "LoggedRun", "log_run", "run_metrics", "run_params"]

DEFAULT_EXPERIMENT = "labkit"
TAG_UUID = "labkit.run_uuid"
TAG_SCORED = "labkit.scored_sha256"  # set last: a run without it was not logged whole
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value
_SKIP_FILES = {".lock"}
_KEY_OK = re.compile(r"[^A-Za-z0-9_\-. /:]")


@dataclass
class LoggedRun:
    """What :func:`log_run` did: the MLflow run id and experiment, and whether it logged
    anew (``created``) or found the run logged already (``created`` False)."""

    mlflow_run_id: str
    experiment_id: str
    created: bool
    n_params: int = 0
    n_metrics: int = 0
    artifacts: list[str] = field(default_factory=list)
    verdict: str | None = None
    replaced: str | None = None  # the stale MLflow run deleted (the labkit run was re-scored)

    def summary(self) -> str:
        if not self.created:
            return f"already logged as MLflow run {self.mlflow_run_id} (experiment {self.experiment_id}): unchanged"
        gate = f", gate {self.verdict}" if self.verdict else ""
        again = f" (replacing {self.replaced}, logged before the run was re-scored)" if self.replaced else ""
        return (f"logged MLflow run {self.mlflow_run_id} in experiment {self.experiment_id}: {self.n_params} "
                f"parameters, {self.n_metrics} metrics, {len(self.artifacts)} artifacts{gate}{again}")


def _require() -> None:
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise MissingDependencyError("mlflow", "mlflow", "MLflow logging")


def _key(k: str) -> str:
    return _KEY_OK.sub("_", k)[:250]


def _flat(prefix: str, obj: Any, out: dict[str, str]) -> None:
    if isinstance(obj, Mapping) and obj:
        for k, v in obj.items():
            _flat(f"{prefix}.{k}", v, out)
        return
    text = obj if isinstance(obj, str) else json.dumps(obj, default=str, sort_keys=True)
    if len(text) > MAX_PARAM_CHARS:
        text = text[: MAX_PARAM_CHARS - 40] + f"... [cut: {len(text)} chars]"
    out[_key(prefix)] = text


def run_params(manifest: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The MLflow parameters of a run: pipeline config, runner settings, dataset, gate and lock."""
    out: dict[str, str] = {}
    pipe = manifest.get("pipeline") or {}
    _flat("pipeline", pipe.get("config") or {}, out)
    for k in ("name", "config_hash"):
        if pipe.get(k) is not None:
            out[f"pipeline_{k}"] = str(pipe[k])
    _flat("runner", {k: v for k, v in (manifest.get("runner") or {}).items() if k != "mlflow"}, out)
    ds = manifest.get("dataset") or {}
    for k in ("fingerprint", "path", "n_cases"):
        if ds.get(k) is not None:
            out[f"dataset.{k}"] = str(ds[k])
    g = dict(manifest.get("gate") or {})
    g.update({k: v for k, v in (gate or {}).items() if v is not None})
    for k in ("name", "path", "hash", "locked", "locked_at", "lock_hash", "mode"):
        if g.get(k) is not None:
            out[f"gate.{k}"] = str(g[k])
    for k in ("run_id", "labkit_version", "git_sha", "python", "created_at"):
        if manifest.get(k) is not None:
            out[f"labkit.{k}"] = str(manifest[k])
    return out


def run_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, float], list[str]]:
    """(MLflow metrics, names of unmeasured metrics) from metrics.json: each value with its
    interval bounds and counts; a metric with no value logs its counts only."""
    out: dict[str, float] = {}
    unmeasured: list[str] = []
    for name, e in (metrics.get("metrics") or {}).items():
        if not isinstance(e, Mapping):
            continue
        k = _key(str(name))
        for part in ("n", "unmeasured", "n_missing"):
            if isinstance(e.get(part), int | float) and not isinstance(e.get(part), bool):
                out[f"{k}.{part}"] = float(e[part])
        if not isinstance(e.get("value"), int | float) or isinstance(e.get("value"), bool):
            unmeasured.append(str(name))
            continue
        out[k] = float(e["value"])
        for part in ("ci_low", "ci_high"):
            if isinstance(e.get(part), int | float):
                out[f"{k}.{part}"] = float(e[part])
    return out, unmeasured


def _scores_table(rd: Any) -> dict[str, list[Any]] | None:
    """scores.csv as columns (empty cells as null, numbers as numbers: no NaN)."""
    from labkit.runs import read_scores_rows

    if not rd.scores_path.is_file():
        return None
    rows = read_scores_rows(rd.scores_path)  # (each text as it was scored)
    if not rows:
        return None

    def cell(v: str | None) -> Any:
        if v is None or v == "":
            return None
        try:
            return float(v)
        except ValueError:
            return v

    return {c: [row.get(c) if c == "case_id" else cell(row.get(c)) for row in rows] for c in rows[0]}


def _gate_report(rd: Any, gate: str | None, baseline: str | None) -> tuple[Any, str] | None:
    """(GateReport, mode) for the given gate, else the gate the run was started under."""
    from labkit.gate import Gate

    path = gate or (rd.manifest.get("gate") or {}).get("path")
    if not path:
        return None
    if not Path(path).is_file():
        raise ConfigError("gate config not found (give --gate GATE or leave it out)", path=str(path), field="gate")
    g = Gate.load(path)
    mode = "full"
    if g.regression and baseline is None:
        g, mode = g.thresholds_only(), "thresholds_only"
    return g.evaluate(str(rd.path), baseline=baseline), mode


class _Target:
    """One MLflow experiment through ``mlflow.MlflowClient`` (no global MLflow state is set)."""

    def __init__(self, tracking_uri: str | None, experiment: str, artifact_location: str | None) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is not None and exp.lifecycle_stage != "active":
            raise ConfigError(f"MLflow experiment {experiment!r} is deleted: restore it or choose another",
                              field="experiment")
        self.experiment_id = exp.experiment_id if exp is not None else self.client.create_experiment(
            experiment, artifact_location=artifact_location)

    def find(self, run_uuid: str) -> Any:
        """The active MLflow run tagged with this labkit run's uuid (the newest if several)."""
        found = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{TAG_UUID}` = '{run_uuid}'",
                                        max_results=10, order_by=["attributes.start_time DESC"])
        return found[0] if found else None

    def create(self, tags: Mapping[str, str], *, run_name: str) -> str:
        run = self.client.create_run(self.experiment_id, tags=dict(tags), run_name=run_name)
        return str(run.info.run_id)

    def log(self, run_id: str, *, params: Mapping[str, str], metrics: Mapping[str, float]) -> None:
        import time

        from mlflow.entities import Metric, Param

        ps = [Param(k, v) for k, v in params.items()]
        now = int(time.time() * 1000)
        ms = [Metric(k, v, now, 0) for k, v in metrics.items()]
        for a in range(0, len(ps), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(run_id, params=ps[a:a + 100])
        for a in range(0, len(ms), 1000):
            self.client.log_batch(run_id, metrics=ms[a:a + 1000])

    def upload_dir(self, run_id: str, root: Path, dest: str) -> None:
        for p in _files(root):
            rel = p.relative_to(root).parent.as_posix()
            self.client.log_artifact(run_id, str(p), dest if rel == "." else f"{dest}/{rel}")

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)


def _files(root: Path) -> Iterable[Path]:
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in _SKIP_FILES:
            yield p


def log_run(
    run_dir: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    gate: str | None = None,
    baseline: str | None = None,
    reports: Sequence[str | os.PathLike[str]] = (),
    artifact_location: str | None = None,
) -> LoggedRun:
    """Log a scored run directory to MLflow (see the module docstring); idempotent.

    ``tracking_uri`` is MLflow's (``http://127.0.0.1:5000``, ``sqlite:///mlflow.db``; None:
    MLflow's default, ``MLFLOW_TRACKING_URI``). ``gate`` judges the run (default: the gate it
    was started under, if any); with regression checks and no ``baseline`` the thresholds
    alone are judged and the tag says so. ``artifact_location`` is used only when the
    experiment is created here."""
    _require()
    from labkit.runs import RunDir

    rd = RunDir(run_dir)
    if not rd.manifest_path.is_file():
        raise RunDirError(f"{rd.path} is not a run directory (no manifest.json)")
    if not rd.metrics_path.is_file():
        raise RunDirError(f"{rd.path} is not scored (no metrics.json): run {rd.score_command} first")
    from labkit.scoring import verify_scored

    verify_scored(rd)  # a run whose files changed after scoring is refused (RunDirError)
    for r in reports:
        if not Path(r).is_file():
            raise ConfigError("report not found", path=str(r), field="reports")
    _check_tracking_uri(tracking_uri)
    if gate:  # a bad gate file is the user's mistake: say so before any store is opened or made
        from labkit.gate import Gate

        Gate.load(gate)
    scored = _scored_sha(rd, gate=gate, baseline=baseline, reports=reports)
    if artifact_location is None:
        artifact_location = _beside_store(tracking_uri)
    target = _Target(tracking_uri, experiment, artifact_location)
    found = target.find(rd.run_uuid)
    if found is not None and found.data.tags.get(TAG_SCORED) == scored:
        return LoggedRun(found.info.run_id, target.experiment_id, created=False,
                         verdict=found.data.tags.get("labkit.gate.verdict"))
    stale = found.info.run_id if found is not None else None
    logged = _log_new(target, rd, scored, gate=gate, baseline=baseline, reports=reports)
    if stale is not None:
        target.client.delete_run(stale)
        logged.replaced = stale
    return logged


#: Tracking URI schemes MLflow stores take (a dialect may carry its driver: ``postgresql+psycopg2``).
TRACKING_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks",
                    "databricks-uc", "uc")


def _check_tracking_uri(uri: str | None) -> None:
    if uri and "://" in uri:
        scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in TRACKING_SCHEMES:
            raise ConfigError(f"tracking URI scheme {scheme!r} is not one MLflow stores take",
                              field="tracking_uri", known=list(TRACKING_SCHEMES))
    folder = _sqlite_folder(uri)
    if folder is not None and not folder.is_dir():  # (MLflow would make it, and its mlruns/, wherever a typo points)
        raise ConfigError(f"the folder of the SQLite store is not there: {folder}", field="tracking_uri")


def _sqlite_folder(uri: str | None) -> Path | None:
    """The folder of a SQLite store's database file (None: another store)."""
    return Path(uri[len("sqlite:///"):]).resolve().parent if uri and uri.lower().startswith("sqlite:///") else None


def _beside_store(uri: str | None) -> str | None:
    """For a SQLite store, its artifacts in ``mlruns/`` beside the database file (MLflow's own
    default is ``./mlruns`` in whatever folder the command runs in)."""
    folder = _sqlite_folder(uri)
    return None if folder is None else (folder / "mlruns").as_uri()


def _scored_sha(rd: Any, *, gate: str | None, baseline: str | None,
                reports: Sequence[str | os.PathLike[str]]) -> str:
    """What the logged MLflow run stands for: the run's scoring record (or its metrics.json)
    and what this call adds (the gate file's content, the baseline, the reports)."""
    import hashlib

    sc = rd.manifest.get("scoring") or {}
    rec = sc.get("sha256") if isinstance(sc, Mapping) else None
    scored = json.dumps(rec, sort_keys=True) if isinstance(rec, Mapping) and rec else rd.metrics_path.read_text()
    g = gate or (rd.manifest.get("gate") or {}).get("path")
    gate_text = Path(g).read_text(encoding="utf-8") if g and Path(g).is_file() else ""
    extra = json.dumps([gate_text, str(baseline or ""), [hashlib.sha256(Path(r).read_bytes()).hexdigest()
                                                         for r in reports]])
    return hashlib.sha256(f"{scored}\n{extra}".encode()).hexdigest()


def _log_new(target: Any, rd: Any, scored: str, *, gate: str | None, baseline: str | None,
             reports: Sequence[str | os.PathLike[str]]) -> LoggedRun:
    from labkit.trace.redact import Redactor

    red = Redactor.from_config(rd.redaction)
    judged = _gate_report(rd, gate, baseline)
    gate_info: dict[str, Any] = {}
    tags = {TAG_UUID: rd.run_uuid, "labkit.run_id": rd.run_id, "labkit.run_dir": str(rd.path.resolve())}
    if judged is not None:
        rep, mode = judged
        gate_info = {"name": rep.gate, "mode": mode, **{f"lock_{k}": v for k, v in (rep.pre_registration or {}).items()
                                                         if isinstance(v, str | int | float | bool)}}
        tags |= {"labkit.gate.verdict": "pass" if rep.passed else "fail", "labkit.gate.name": str(rep.gate),
                 "labkit.gate.mode": mode}
    params = red.redact(run_params(rd.manifest, gate_info))
    metrics, unmeasured = run_metrics(rd.metrics())
    if unmeasured:
        tags["labkit.unmeasured"] = ",".join(unmeasured)[:5000]
    run_id = target.create(red.redact(tags), run_name=rd.run_id)
    target.log(run_id, params=params, metrics=metrics)
    table = _scores_table(rd)
    if table is not None:
        target.client.log_table(run_id, data=table, artifact_file="scores.json")
    artifacts = [f"run/{p.relative_to(rd.path).as_posix()}" for p in _files(rd.path)]
    target.upload_dir(run_id, rd.path, "run")
    for r in reports:
        target.client.log_artifact(run_id, str(r), "reports")
        artifacts.append(f"reports/{Path(r).name}")
    if judged is not None:
        rep = judged[0]
        target.log_text(run_id, rep.to_markdown(), "gate/gate.md")
        target.log_text(run_id, json.dumps(rep.to_dict(), indent=2, default=str), "gate/gate.json")
        artifacts += ["gate/gate.md", "gate/gate.json"]
    target.client.set_tag(run_id, TAG_SCORED, scored)  # last: the run is logged whole
    target.client.set_terminated(run_id, "FINISHED")
    return LoggedRun(run_id, target.experiment_id, created=True, n_params=len(params), n_metrics=len(metrics),
                     artifacts=artifacts + (["scores.json"] if table is not None else []),
                     verdict=tags.get("labkit.gate.verdict"))
