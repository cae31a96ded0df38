"""``labkit mlflow log RUN_DIR... [--tracking-uri URI] [--experiment NAME]`` (extra ``mlflow``),
and the ``mlflow:`` run option's hook (``labkit run`` logs the run when it ends)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError

#: MLflow's HTTP client retries for minutes by default; a command says what failed sooner.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
#: MLflow's switch for the "View run ... at: <URI>/#/..." lines it prints: set for a URI that holds
#: credentials (labkit's own lines name the URI masked, through ``labkit.openai_compat.scrub``).
_NO_LINK = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def register(sub: Any) -> None:
    p = sub.add_parser("mlflow", help="log runs to MLflow: parameters, metrics with intervals, per-case "
                                      "scores, gate verdict, files (extra mlflow)",
                       description="Log each run to MLflow (docs/mlflow.md): its parameters, metrics with their "
                                   "intervals, per-case scores, the gate's verdict and its files. A run logged "
                                   "before and not re-scored since is left as it is.")
    p.add_argument("action", choices=["log"])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's)")
    p.add_argument("--experiment", default="labkit", help="MLflow experiment name (default labkit)")
    p.add_argument("--gate", help="gate YAML to judge the run with (default: the gate the run was started under)")
    p.add_argument("--baseline", help="baseline run for the gate's regression checks "
                                      "(without it only the thresholds are judged, and the tag says so)")
    p.add_argument("--report", action="append", default=[], metavar="HTML", help="an HTML report to attach (repeatable)")
    p.add_argument("--artifact-location", help="artifact location of the experiment, when it is created here")
    p.add_argument("--traces", action="store_true",
                   help="also export the run's traces to the tracking server's OTLP endpoint (/v1/traces)")
    p.add_argument("--capture-content", action="store_true", help="with --traces: include (redacted) text content")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="with --traces: seconds to wait for the endpoint, retries included (default 60: a "
                        "tracking server's first OTLP request can take several seconds)")
    p.set_defaults(handler=_mlflow)


def _mlflow(args: argparse.Namespace) -> int:
    opts = {"tracking_uri": args.tracking_uri, "experiment": args.experiment, "gate": args.gate,
            "baseline": args.baseline, "artifact_location": args.artifact_location, "traces": args.traces}
    code = 0
    for d in args.run_dirs:
        code = max(code, log_one(d, opts, reports=args.report, capture_content=args.capture_content,
                                 timeout_s=args.timeout))
    return code


def log_one(run_dir: str | os.PathLike[str], opts: Mapping[str, Any], *, reports: list[str] | tuple[str, ...] = (),
            capture_content: bool = False, timeout_s: float = 60.0) -> int:
    """Log one run (and its traces with ``opts['traces']``); prints one line; 0 logged, 1 the
    backend failed (the message says what). A user's mistake raises a LabkitError (exit 2)."""
    from labkit.errors import require_extra

    require_extra("mlflow", "labkit mlflow")
    for k, v in _HTTP_DEFAULTS.items():
        os.environ.setdefault(k, v)
    from mlflow.exceptions import MlflowException

    from labkit.mlflowlog import DEFAULT_EXPERIMENT, log_run
    from labkit.openai_compat import scrub

    uri = opts.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if uri and scrub(uri) != uri:  # (MLflow prints its run's link with the URI as given, credentials included)
        os.environ[_NO_LINK] = "true"
    try:
        logged = log_run(run_dir, tracking_uri=uri, experiment=opts.get("experiment") or DEFAULT_EXPERIMENT,
                         gate=opts.get("gate"), baseline=opts.get("baseline"), reports=list(reports),
                         artifact_location=opts.get("artifact_location"))
    except MlflowException as e:  # (MLflow's text names the URI too: masked before it is cut)
        print(f"labkit: error: MLflow at {scrub(uri) if uri else 'the default tracking URI'} failed for "
              f"{run_dir}: {scrub(' '.join(str(e.message).split()))[:300]}", file=sys.stderr)
        return 1
    print(f"{run_dir}: {logged.summary()}")
    if opts.get("traces"):
        return _traces(run_dir, uri, logged.experiment_id, capture_content, timeout_s)
    return 0


def _traces(run_dir: str | os.PathLike[str], uri: str | None, experiment_id: str, capture_content: bool,
            timeout_s: float) -> int:
    from labkit.errors import ExportFailed
    from labkit.trace.otel import export_runs

    if not uri or not uri.startswith(("http://", "https://")):
        raise ConfigError("--traces needs an http(s) tracking URI (an MLflow server's OTLP endpoint)",
                          field="tracking_uri")
    try:
        n = export_runs([str(run_dir)], endpoint=uri, headers={"x-mlflow-experiment-id": experiment_id},
                        capture_content=capture_content, timeout_s=timeout_s)
    except ExportFailed as e:
        print(f"labkit: error: {e}", file=sys.stderr)
        return 1
    from labkit.openai_compat import scrub

    print(f"{run_dir}: exported {n} spans to {scrub(uri.rstrip('/'))}/v1/traces (experiment {experiment_id})")
    return 0


def log_after_run(run_dir: str | os.PathLike[str], pipeline_spec: str | None) -> int:
    """The ``mlflow:`` run option: log the run that just ended. The option is read from the
    pipeline YAML (the manifest holds it redacted: a tracking URI with a host address would
    not work from there), else from the manifest (a config given in Python)."""
    from labkit.runs import RunDir

    opt = (RunDir(run_dir).manifest.get("runner") or {}).get("mlflow")
    if not opt:
        return 0
    raw = _yaml_option(pipeline_spec)
    merged = {**opt, **raw} if raw else dict(opt)
    code = log_one(run_dir, merged)
    if code:
        print(f"labkit: the run is written and scored in {run_dir}; log it again with labkit mlflow log {run_dir}",
              file=sys.stderr)
    return code


def _yaml_option(spec: str | None) -> dict[str, Any]:
    if not spec or not str(spec).endswith((".yaml", ".yml")) or not Path(spec).is_file():
        return {}
    from labkit.config import read_yaml

    cfg = read_yaml(spec)
    runner = cfg.get("runner") if isinstance(cfg, Mapping) else None
    opt = runner.get("mlflow") if isinstance(runner, Mapping) else None
    return dict(opt) if isinstance(opt, Mapping) else {}
