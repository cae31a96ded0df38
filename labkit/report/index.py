"""index.html: one row per report with its verdict; and ``<name>.report.json``, the record of
one report's outcome, so a later partial build (``--only``) still lists the others."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from labkit.display import (
    FAIL_COLOUR,
    MUTED_COLOUR,
    PASS_COLOUR,
    STATUS_COLOURS,
    Verdict,
    css_variables,
)
from labkit.errors import ConfigError
from labkit.io import atomic_write_text
from labkit.report.export import write_public
from labkit.report.results import NotebookFailure, ReportEntry


def write_index(entries: Sequence[ReportEntry], out_dir: Path, wall_s: float) -> Path:
    """index.html: one row per report with its verdict, links relative to the index."""
    rows = []
    for e in entries:
        if e.status != "ok":
            badge = _badge("ERROR", FAIL_COLOUR)
            verdict = html.escape(str(e.failure)) if e.failure else "failed"
        elif e.verdict is not None:
            badge = _badge(e.verdict.status.upper(), STATUS_COLOURS[e.verdict.status])
            verdict = f"<strong>{html.escape(e.verdict.title)}</strong>"
            if e.verdict.detail:
                verdict += f"<br><span class='muted'>{html.escape(e.verdict.detail)}</span>"
        else:
            badge = _badge("DONE", MUTED_COLOUR)
            verdict = "<span class='muted'>no verdict published</span>"
        name = html.escape(e.name)
        title = html.escape(e.title or e.name)
        link = (
            f"<a href='{html.escape(e.html.name, quote=True)}'>{title}</a>" if e.html is not None else title
        )
        rows.append(
            f"<tr class='lk-row lk-{'ok' if e.status == 'ok' else 'failed'}' data-notebook='{name}'>"
            f"<td><code>{name}</code></td><td>{link}</td><td>{badge}</td><td>{verdict}</td>"
            f"<td class='num'>{e.seconds:.1f} s</td></tr>"
        )
    n_fail = sum(1 for e in entries if e.status != "ok")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    status = (
        _badge("ALL REPORTS BUILT", PASS_COLOUR)
        if n_fail == 0
        else _badge(f"{n_fail} NOTEBOOK(S) FAILED", FAIL_COLOUR)
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>labkit reports</title>
<style>
{css_variables()}
body {{ margin:0; background:var(--lk-soft); color:var(--lk-ink);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }}
main {{ max-width: 1120px; margin: 24px auto; background:var(--lk-bg); padding: 28px 40px;
  border:1px solid var(--lk-line); border-radius:8px; }}
h1 {{ margin:0 0 .3rem; border-bottom:2px solid var(--lk-ink); padding-bottom:.3rem; }}
table {{ border-collapse: collapse; width:100%; margin-top:1rem; font-size:.95rem; }}
th, td {{ border:1px solid var(--lk-line); padding:6px 10px; text-align:left; vertical-align:top; }}
thead th {{ background:var(--lk-soft); }}
td.num {{ text-align:right; font-variant-numeric: tabular-nums; white-space:nowrap; }}
.muted {{ color:var(--lk-muted); }}
.badge {{ color:var(--lk-bg); font-weight:700; border-radius:4px; padding:2px 8px; font-size:.8rem;
  letter-spacing:.04em; white-space:nowrap; }}
tr.lk-failed td {{ background:var(--lk-fail-soft); }}
</style></head>
<body><main>
<h1>labkit reports</h1>
<p>{status} <span class="muted">{len(entries)} report(s), built {when}, wall time {wall_s:.1f} s.
Every report is a single offline HTML file.</span></p>
<table><thead><tr><th>notebook</th><th>report</th><th>status</th><th>verdict</th><th>time</th></tr></thead>
<tbody>
{''.join(rows)}
</tbody></table>
</main></body></html>
"""
    path = out_dir / "index.html"
    write_public(path, page)
    return path


def _badge(text: str, colour: str) -> str:
    return f"<span class='badge' style='background:{colour}'>{html.escape(text)}</span>"


def write_record(entry: ReportEntry, out_dir: Path) -> None:
    """<name>.report.json: the entry's outcome, so a later partial build can still index it."""
    rec = {
        "name": entry.name,
        "notebook": str(entry.notebook),
        "title": entry.title,
        "status": entry.status,
        "seconds": round(entry.seconds, 3),
        "attempts": entry.attempts,
        "html": entry.html.name if entry.html else None,
        "verdict": entry.verdict.to_dict() if entry.verdict else None,
        "failure": None if entry.failure is None else {**entry.failure.__dict__, "text": str(entry.failure)},
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_text(out_dir / f"{entry.name}.report.json", json.dumps(rec, indent=2) + "\n")


def read_record(path: Path, out_dir: Path) -> ReportEntry | None:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        failure = rec.get("failure")
        fail = None
        if failure:
            fail = NotebookFailure(**{k: v for k, v in failure.items() if k != "text"})
        html_name = rec.get("html")
        return ReportEntry(
            name=rec["name"],
            notebook=Path(rec["notebook"]),
            status=rec["status"],
            seconds=float(rec["seconds"]),
            attempts=int(rec.get("attempts", 1)),
            title=rec.get("title", ""),
            html=(out_dir / html_name) if html_name and (out_dir / html_name).exists() else None,
            verdict=Verdict.from_dict(rec["verdict"]) if rec.get("verdict") else None,
            failure=fail,
        )
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return None

