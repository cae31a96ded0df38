"""``labkit scorecard``, ``labkit incident`` and ``labkit slo``: the readiness review.

Exit codes: ``scorecard`` 0 when ready or ready with conditions, 1 when not
ready; ``incident`` 0; ``slo`` 0 when every SLO is met, 1 otherwise; 2 on a
usage, config or input error (raised as a LabkitError for labkit.cli).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, require_extra

PATH_OPTIONS = ("gate", "slo", "rollout", "alerts", "attestations", "dataset", "reviews", "pipelines_dir", "runs_dir")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "scorecard",
        help="readiness scorecard: area scores, verdict, gaps (exit 0 ready[/with conditions], 1 not ready)",
        description="Evaluate the checklists, SLOs and rollout for a candidate run and write scorecard.json "
        "(and the HTML of notebooks/05_readiness_scorecard.ipynb unless --no-html).",
    )
    p.add_argument("--baseline", metavar="RUN", help="baseline run directory (the release in production)")
    p.add_argument("--variant", metavar="RUN", help="candidate run directory (default: the baseline is the candidate)")
    p.add_argument("--out", metavar="DIR", default="outputs/reports/readiness", help="output folder")
    p.add_argument("--root", default=".", help="project root the default paths are under")
    for opt in PATH_OPTIONS:
        p.add_argument(f"--{opt.replace('_', '-')}", dest=opt, metavar="PATH", help=f"override the {opt} path")
    p.add_argument("--no-html", action="store_true", help="write the JSON only (no notebook execution)")
    canary = p.add_mutually_exclusive_group()
    canary.add_argument("--canary", metavar="DIR", help="the HTML's online-experiment section from these canary "
                        "traces (default: the shipped simulated canary, labelled so)")
    canary.add_argument("--no-canary", action="store_true", help="no online-experiment section in the HTML")
    p.add_argument("--json", action="store_true", help="print the scorecard JSON on stdout")
    p.set_defaults(handler=_scorecard)

    q = subparsers.add_parser(
        "incident",
        help="incident review from a failing run: incident.md, regression_cases.jsonl, backlog.csv",
        description="labkit incident BASELINE_RUN FAILING_RUN --out DIR",
    )
    q.add_argument("baseline", metavar="BASELINE_RUN")
    q.add_argument("failing", metavar="FAILING_RUN")
    q.add_argument("--out", metavar="DIR", required=True, help="folder for the note, cases and backlog")
    q.add_argument("--dataset", help="dataset the failed cases come from (default: the run's)")
    q.add_argument("--gate", help="gate config to check the regressed metrics against (default: the run's)")
    q.set_defaults(handler=_incident)

    s = subparsers.add_parser(
        "slo",
        help="SLOs over run history: status, error budget remaining, burn rate (exit 0 only when every one is "
             "met: at_risk, violated or no_data exit 1)",
        description="labkit slo RUN... [--slo data/slo.yaml] [--json]; the runs are ordered by their "
        "manifest's created_at (ties by run id, then path; runs without one last), the last ones are the "
        "recent window; each must match its scoring record, and a run given twice is refused",
    )
    s.add_argument("runs", nargs="+", metavar="RUN")
    s.add_argument("--slo", default="data/slo.yaml", help="SLO file")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=_slo)


def _refuse_overwrites(out: Path, names: Iterable[str], inputs: Mapping[str, Any]) -> None:
    """An OutputError naming --out and the input when a file the command writes into ``out``
    would replace one of its inputs (labkit.paths.refuse_overwriting_inputs); before any write."""
    from labkit.paths import refuse_overwriting_inputs

    for name in names:
        refuse_overwriting_inputs(out / name, inputs, flag="--out")


def _scorecard_outputs(no_html: bool) -> list[str]:
    """The files ``labkit scorecard`` writes into --out (the incident review under incident/)."""
    from labkit.readiness.incident import INCIDENT_FILES

    names = ["scorecard.json", "deployment_checklist.md", *(f"incident/{n}" for n in INCIDENT_FILES)]
    if not no_html:
        nb = "05_readiness_scorecard"
        names += [f"{nb}.html", f"{nb}.report.json", f"executed/{nb}.ipynb", "index.html"]
    return names


def _scorecard_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Every input of the review by its flag: the runs, and each evidence path, given or the
    default under --root (for a folder, the files read from it: the runs' own files, the
    config files the secrets scan reads)."""
    from labkit.paths import FolderInput
    from labkit.readiness.model import Paths
    from labkit.readiness.secrets import config_files
    from labkit.runs import run_files

    given = {k: getattr(args, k) for k in PATH_OPTIONS if getattr(args, k)}
    paths = Paths(root=Path(args.root), **given)
    assert paths.pipelines_dir is not None and paths.runs_dir is not None
    runs_dirs = sorted(d for d in paths.runs_dir.iterdir() if d.is_dir()) if paths.runs_dir.is_dir() else []
    folders = {"pipelines_dir": FolderInput(paths.pipelines_dir, tuple(config_files([paths.pipelines_dir]))),
               "runs_dir": [run_files(d) for d in runs_dirs]}
    return {"--baseline": args.baseline and run_files(args.baseline),
            "--variant": args.variant and run_files(args.variant),
            **{f"--{k.replace('_', '-')}": folders.get(k, getattr(paths, k)) for k in PATH_OPTIONS}}


def _scorecard(args: argparse.Namespace) -> int:
    if not args.no_html:
        require_extra("lab", "the HTML scorecard (or give --no-html)")
    from labkit.readiness import build_scorecard

    if args.baseline is None and args.variant is None:
        raise ConfigError("give --baseline RUN and/or --variant RUN")
    given = {f"--{k.replace('_', '-')}": getattr(args, k) for k in (*PATH_OPTIONS, "baseline", "variant")}
    for flag, path in given.items():  # (a path named and mistyped: not a missing piece of evidence)
        if path and not Path(path).exists():
            raise ConfigError(f"{flag} {path}: not found", field=flag.lstrip("-"))
    out = Path(args.out)
    _refuse_overwrites(out, _scorecard_outputs(args.no_html), _scorecard_inputs(args))
    paths = {k: getattr(args, k) for k in PATH_OPTIONS if getattr(args, k)}
    sc = build_scorecard(args.baseline, args.variant, root=args.root, incident_dir=out / "incident", **paths)
    out.mkdir(parents=True, exist_ok=True)  # after the review: a config error it raises leaves nothing written
    sc.save(out / "scorecard.json")
    from labkit.io import atomic_write_text

    atomic_write_text(out / "deployment_checklist.md", sc.deployment_checklist())
    if args.json:
        print(sc.to_json())
    else:
        print(sc.headline())
        print(f"rule: {sc.rule}")
        for a, v in sc.areas.items():
            print(f"  {a:<20} {'—' if v['score'] is None else v['score']:>4}")
        for g in sc.gaps:
            print(f"  {g['rank']:>2}. [{g['severity']}] {g['item']} ({g['status']}): {g['action']}")
        print(f"wrote {out / 'scorecard.json'} and {out / 'deployment_checklist.md'}")
    if not args.no_html:
        from labkit.report.engine import build_reports

        root = Path(args.root).resolve()
        cand = args.variant or args.baseline
        params = {"baseline_run": str(Path(args.baseline or cand).resolve()),
                  "variant_run": str(Path(cand).resolve()),
                  "evidence_root": str(root),
                  "gate": str(Path(args.gate).resolve()) if args.gate else str(root / "data" / "gate.yaml"),
                  "dataset": str(Path(args.dataset).resolve()) if args.dataset else str(root / "data" / "golden.jsonl"),
                  "incident_dir": str((out / "incident").resolve()),
                  "canary_traces": "" if args.no_canary else str(Path(args.canary).resolve()) if args.canary
                  else str(root / "data" / "canary" / "simulated-canary"),
                  "evidence": {k: str(Path(v).resolve()) for k, v in paths.items() if k not in ("gate", "dataset")}}
        nb_dir = root / "notebooks"
        if not (nb_dir / "05_readiness_scorecard.ipynb").is_file():
            import labkit

            nb_dir = Path(labkit.__file__).resolve().parents[1] / "notebooks"
        idx = build_reports(only=["05_readiness_scorecard"], params=params, out_dir=out, notebooks_dir=nb_dir)
        idx.raise_for_failures()
        print(f"wrote {out / '05_readiness_scorecard.html'}")
    return 1 if sc.verdict == "not ready" else 0


def _incident(args: argparse.Namespace) -> int:
    from labkit.readiness import incident_review
    from labkit.readiness.incident import INCIDENT_FILES
    from labkit.runs import run_files

    _refuse_overwrites(Path(args.out), INCIDENT_FILES, {"BASELINE_RUN": run_files(args.baseline),
                                                         "FAILING_RUN": run_files(args.failing),
                                                         "--dataset": args.dataset, "--gate": args.gate})
    rev = incident_review(args.baseline, args.failing, args.out, dataset=args.dataset, gate=args.gate)
    print(rev.summary)
    print(f"stage: {rev.stage or 'none'}; {len(rev.regression_cases)} regression case(s); "
          f"{len(rev.actions)} action item(s)")
    print(f"wrote {rev.note_path}, {rev.cases_path}, {rev.backlog_path}")
    return 0


def _slo(args: argparse.Namespace) -> int:
    from labkit.readiness import evaluate_slos, load_slos
    from labkit.readiness.slo import slo_history

    cfg = load_slos(args.slo)
    st = evaluate_slos(cfg, slo_history(args.runs))
    if args.json:
        print(json.dumps([s.to_dict() for s in st], indent=2, default=str))
    else:
        for s in st:
            rem = "—" if s.budget_remaining is None else f"{s.budget_remaining:.0%}"
            burn = "—" if s.burn_rate is None else f"{s.burn_rate:.2f}"
            print(f"{s.name:<20} {s.status:<9} budget remaining {rem:>6}  burn rate {burn:>6}  {s.target}")
    return 0 if all(s.status == "met" for s in st) else 1
