"""Report build time: every shipped notebook executed with papermill and exported to HTML.

Runs the report engine as ``make report`` does (runs under outputs/runs/, the reports into a
temporary folder), twice,
and prints the wall time of each beside the target of 90 s on the 2-core reference
machine, and the ratio target / median. The last line printed is one JSON object with the
figures (README, `make bench`). Timing is measured here and not asserted in the tests:
the test machine is shared, and a timed test would fail on load, not on the code.

    .venv/bin/python benchmarks/bench_report.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from labkit.report import project_root
from labkit.report.engine import build_reports

TARGET_S = 90.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    root = project_root()
    walls = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            index = build_reports(notebooks_dir=root / "notebooks", out_dir=Path(tmp) / "reports")
            ok = index.ok
        walls.append(index.wall_s)
        print(f"round {i + 1}: {len(index.entries)} reports in {index.wall_s:.1f} s ({'ok' if ok else 'FAILED'})")
    med = statistics.median(walls)
    print(f"median {med:.1f} s; target {TARGET_S:.0f} s; target / median = {TARGET_S / med:.2f}")
    print(json.dumps({"bench": "report", "rounds": walls, "median_s": round(med, 2), "target_s": TARGET_S,
                      "ratio_target_over_median": round(TARGET_S / med, 3), "ok": ok}))


if __name__ == "__main__":
    main()
