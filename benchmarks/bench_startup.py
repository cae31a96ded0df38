"""Start-up time of the labkit command, beside a bare interpreter.

Four commands, each a fresh interpreter, run interleaved (one of each per
round, the order rotating, after one warm-up round) so they share the
machine's load; the figures are the medians over the rounds:

- ``python -c pass`` (the floor: the interpreter and its site packages);
- ``labkit --help`` (the console script's own code: ``labkit.cli.main()``);
- ``labkit gate --config data/gate.yaml RUN --thresholds-only`` on a scored run of the quick lab;
- ``python -c "import labkit"``.

It also reports whether ``labkit --help`` and ``labkit gate`` loaded numpy or
pandas (they should not). The last line printed is one JSON object with the
figures (README, `make bench`).

    .venv/bin/python benchmarks/bench_startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What the ``labkit`` console script runs.
CLI = "import sys; from labkit.cli import main; sys.exit(main())"
PROBE = ("import contextlib, io, sys; from labkit.cli import main\n"
         "with contextlib.redirect_stdout(io.StringIO()): main(sys.argv[1:])\n"
         "print(','.join(m for m in ('numpy', 'pandas') if m in sys.modules))")


def make_run(out: Path) -> Path:
    """A scored run of the quick lab's baseline (the gate reads its metrics.json)."""
    run = out / "baseline"
    subprocess.run([sys.executable, "-c", CLI, "run", "--dataset", "data/quick_lab.jsonl", "--pipeline",
                    "data/pipelines/baseline.yaml", "--out", str(run), "--quiet"],
                   cwd=ROOT, check=True, capture_output=True)
    return run


def timed(argv: list[str], ok: tuple[int, ...] = (0,)) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if r.returncode not in ok:
        raise SystemExit(f"{argv[3:] or argv}: exit {r.returncode}: {r.stderr.decode()[-500:]}")
    return elapsed


def heavy_loaded(*argv: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True, check=False)
    return [m for m in r.stdout.strip().splitlines()[-1].split(",") if m] if r.stdout.strip() else []


def main() -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15, help="runs of each command (default: 15)")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp))
        gate = ["gate", "--config", "data/gate.yaml", str(run), "--thresholds-only"]
        commands = {
            "python -c pass": ([py, "-c", "pass"], (0,)),
            "labkit --help": ([py, "-c", CLI, "--help"], (0,)),
            "labkit gate": ([py, "-c", CLI, *gate], (0, 1)),
            "import labkit": ([py, "-c", "import labkit"], (0,)),
        }
        names = list(commands)
        times: dict[str, list[float]] = {n: [] for n in names}
        for n in names:  # warm-up: bytecode caches, page cache
            timed(*commands[n])
        for i in range(args.rounds):
            for n in names[i % len(names):] + names[: i % len(names)]:
                times[n].append(timed(*commands[n]))
        loaded = {"help": heavy_loaded("--help"), "gate": heavy_loaded(*gate)}

    med = {n: statistics.median(v) for n, v in times.items()}
    bare = med["python -c pass"]
    print(f"median start time over {args.rounds} interleaved rounds ({py}):")
    for n in names:
        extra = "" if n == "python -c pass" else f"   (+{med[n] - bare:.3f} s over python -c pass)"
        print(f"  {n:<16} {med[n]:.3f} s{extra}")
    print(f"numpy/pandas loaded by labkit --help: {loaded['help'] or 'none'}; by labkit gate: {loaded['gate'] or 'none'}")
    keys = {"python -c pass": "python_pass", "labkit --help": "labkit_help", "labkit gate": "labkit_gate",
            "import labkit": "import_labkit"}
    result: dict[str, object] = {"bench": "startup", "rounds": args.rounds}
    for n, k in keys.items():
        result[f"{k}_s"] = round(med[n], 4)
        if n != "python -c pass":
            result[f"{k}_over_bare_s"] = round(med[n] - bare, 4)
    result["help_heavy_modules"] = loaded["help"]
    result["gate_heavy_modules"] = loaded["gate"]
    result["help_under_0_3s"] = bool(med["labkit --help"] < 0.3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
