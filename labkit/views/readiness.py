"""HTML views of a scorecard for the readiness notebook (every user text escaped)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from labkit.display import (
    FAIL_COLOUR,
    FAINT_LINE,
    LINE,
    MUTED_COLOUR,
    PASS_COLOUR,
    SEVERITY_COLOURS,
    SOFT,
    STATUS_BACKGROUNDS,
    STATUS_COLOURS,
    WARN_COLOUR,
    Html,
    Verdict,
    fmt_number,
    fmt_value,
    unit_of,
)
from labkit.readiness.scorecard import Scorecard
from labkit.views.elements import UNIT_KINDS, num_class, num_td

#: Each readiness and SLO status: (palette status, label shown).
STATUS_STYLE = {
    "pass": ("pass", "pass"),
    "attested": ("info", "attested"),
    "fail": ("fail", "FAIL"),
    "unknown": ("warn", "unknown"),
    "met": ("pass", "met"),
    "at_risk": ("warn", "at risk"),
    "violated": ("fail", "VIOLATED"),
    "no_data": ("warn", "no data"),
}


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _badge(status: str) -> str:
    tone, label = STATUS_STYLE.get(status, ("", status))
    fg, bg = STATUS_COLOURS.get(tone, MUTED_COLOUR), STATUS_BACKGROUNDS.get(tone, SOFT)
    return (f'<span class="lk-status lk-status-{_e(status)}" style="color:{fg};background:{bg};border:1px solid {fg};'
            f'border-radius:4px;padding:0 6px;font-weight:600;white-space:nowrap">{_e(label)}</span>')


def _sev(sev: str) -> str:
    return f'<span style="color:{SEVERITY_COLOURS.get(sev, MUTED_COLOUR)};font-weight:600">{_e(sev)}</span>'


#: a number cell of :func:`_table`: (text, number kind of labkit.views.elements.NUMBER_KINDS[, css])
Num = tuple[str, ...]
_TD = f"padding:4px 8px;border-bottom:1px solid {FAINT_LINE};vertical-align:top"


def _td(c: str | Num) -> str:
    if isinstance(c, tuple):
        return num_td(c[0], c[1], ";".join([_TD, "white-space:nowrap", *c[2:]]))
    return f'<td style="{_TD}">{c}</td>'


def _table(head: list[str], rows: list[list[str | Num]], caption: str = "") -> Html:
    """Cells are HTML (escaped by the caller) or (text, kind) number cells."""
    th = "".join(f'<th style="text-align:left;padding:4px 8px;border-bottom:2px solid {LINE}">{_e(h)}</th>'
                 for h in head)
    body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in rows)
    cap = (f'<caption style="caption-side:bottom;text-align:left;color:{MUTED_COLOUR};font-size:.9rem;padding-top:4px">'
           f"{_e(caption)}</caption>") if caption else ""
    return Html(f'<table class="lk-table" style="border-collapse:collapse;margin:8px 0;font-size:.92rem">{cap}'
                f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")


def verdict_banner(sc: Scorecard) -> Any:
    """The verdict as the report engine's banner (its status feeds the report index)."""
    return Verdict(sc.verdict_status, sc.headline(), sc.notes[0] if sc.notes else sc.rule)


def verdict_rule(sc: Scorecard) -> Html:
    """The paragraph under the banner: why (the notes, the worst gaps), then the verdict's rule."""
    top = [f"{g['item']} ({g['severity']}, {STATUS_STYLE.get(g['status'], ('', g['status']))[1]}): "
           f"{str(g['evidence']).rstrip('.')}" for g in sc.gaps[:2]]
    text = f"{len(sc.gaps)} gap(s) stand between the candidate and READY." if sc.gaps else "No gap remains."
    if top:
        text += " The most severe: " + "; ".join(top) + "."
    text += "".join(" " + n.rstrip(".") + "." for n in sc.notes[1:])  # the banner shows the first
    return Html(f'<p class="lk-why" style="font-size:1.02rem;margin:6px 0 4px"><strong>Why.</strong> {_e(text)}</p>'
                f'<p style="color:{MUTED_COLOUR}"><strong>Rule.</strong> {_e(sc.rule)}</p>')


def area_table(sc: Scorecard) -> Html:
    rows: list[list[str | Num]] = []
    for a, v in sc.areas.items():
        score = v["score"]
        colour = MUTED_COLOUR if score is None else (PASS_COLOUR if score >= 80 else WARN_COLOUR if score >= 50
                                                     else FAIL_COLOUR)
        bar = "" if score is None else (f'<div style="background:{FAINT_LINE};width:120px;height:10px;border-radius:3px">'
                                         f'<div style="background:{colour};width:{int(1.2 * score)}px;height:10px;'
                                         'border-radius:3px"></div></div>')
        shown = "—" if score is None else f"{score} / 100"
        rows.append([_e(a), (shown, "points", f"color:{colour};font-weight:700"), bar,
                     (str(v["pass"]), "count"), (str(v["attested"]), "count"), (str(v["fail"]), "count"),
                     (str(v["unknown"]), "count")])
    return _table(["area", "score", "", "pass", "attested", "fail", "unknown"], rows,
                  "Score per area out of 100 (severity-weighted; attested counts 0.75).")


def gaps_table(sc: Scorecard) -> Html:
    if not sc.gaps:
        return Html("<p><em>No gap: every item passes or is attested.</em></p>")
    rows: list[list[str | Num]] = [[(str(g["rank"]), "count"), _sev(g["severity"]), _badge(g["status"]), f"<code>{_e(g['item'])}</code><br>{_e(g['title'])}",
             _e(g["evidence"]), _e(g["action"])] for g in sc.gaps]
    return _table(["#", "severity", "status", "item", "evidence", "action that closes it"], rows,
                  "Gaps ranked by severity, failures before unknowns.")


def checklist_table(sc: Scorecard, checklist: str) -> Html:
    items = sc.checklist(checklist)
    if not items:
        return Html(f"<p><em>No {_e(checklist)} items.</em></p>")
    rows: list[list[str | Num]] = [[_badge(i.status), f"{_e(i.title)}<br><code style='color:{MUTED_COLOUR}'>{_e(i.id)}</code>",
                                    _sev(i.severity), _e(i.evidence), _e(i.action or "")] for i in items]
    return _table(["status", "item", "severity", "evidence", "action"], rows)


def slo_table(sc: Scorecard) -> Html:
    if not sc.slos:
        return Html("<p><em>No SLO evaluated (no SLO file or no run history).</em></p>")
    rows: list[list[str | Num]] = []
    for s in sc.slos:
        rem = "—" if s.budget_remaining is None else f"{s.budget_remaining:.0%}"
        burn = "—" if s.burn_rate is None else f"{s.burn_rate:.2f}×"
        rows.append([_e(s.name), _e(s.target), _badge(s.status), _slo_observed(s), (rem, "pct"), (burn, "ratio"),
                     (f"{s.n:,}", "count")])
    p95 = (" A latency SLO's observed percentile is an observed latency (the inverted-CDF percentile), so "
           "the SLO is met exactly when it is within the threshold; the key metrics' latency_p95_ms (metrics.json, "
           "the release gate's) interpolates between observations, so on few cases the two p95 figures can "
           "differ slightly." if any(s.kind == "latency" for s in sc.slos) else "")
    return _table(["SLO", "objective", "status", "observed", "budget remaining", "burn rate", "n"], rows,
                  "Budget consumed = bad ratio over the history / allowance; burn rate = the same over the "
                  f"recent window (1.0× spends the budget exactly).{p95}")


def _slo_observed(s: Any) -> Num:
    """The SLO's own statistic with its unit: an error rate in %, a latency in ms, a cost in USD,
    a quality floor's mean on its 0–1 scale."""
    if s.observed is None:
        return ("—", "count")
    if s.kind == "error_rate":
        return (f"{s.observed:.2%}", "pct")
    if s.kind == "latency":
        return (fmt_value("latency_ms", s.observed), "ms")
    if s.kind == "cost_per_success":
        return (fmt_value("cost_usd", s.observed), "usd")
    return (f"{s.observed:.3f} (0–1)", "score")


def rollout_table(sc: Scorecard) -> Html:
    if sc.rollout is None:
        return Html("<p><em>No rollout plan.</em></p>")
    rows: list[list[str | Num]] = []
    for st in sc.rollout.stages:
        reqs = "<br>".join(f"{'✔' if r['passed'] else '✘'} {_e(r['require'])}: {_e(r['evidence'])}"
                           for r in st.requirements)
        trig = "<br>".join(f"{_e(t['trigger'])} (now {_e(fmt_number(t['observed']))})"
                           + (f" <strong style='color:{FAIL_COLOUR}'>would fire</strong>" if t["would_fire"] else "")
                           for t in st.triggers)
        rows.append([f"<strong>{_e(st.name)}</strong>", (f"{st.traffic_percent:g}%", "pct"),
                     _badge("pass" if st.supported else "fail"), reqs, trig])
    supported = sc.rollout.supported_stage or "no stage"
    return Html(_table(["stage", "traffic", "supported", "requirements (gate)", "rollback triggers"], rows).html
                + f"<p><strong>The evidence supports: {_e(supported)}.</strong> Rollback target: "
                f"<code>{_e(sc.rollout.rollback_to or 'none')}</code>.</p>")


def key_metrics_table(sc: Scorecard) -> Html:
    rows: list[list[str | Num]] = []
    for m in sc.key_metrics:
        name = str(m["metric"])
        kind = UNIT_KINDS[unit_of(name)]
        ci = f"[{fmt_value(name, m.get('ci_low'))} – {fmt_value(name, m.get('ci_high'))}]"
        d = m.get("delta")
        delta = "—" if d is None else ("+" if float(d) >= 0 else "−") + fmt_value(name, abs(float(d)))
        n = m.get("n")
        rows.append([_e(name), _e(m.get("stage")), _e(unit_of(name)), (fmt_value(name, m.get("baseline")), kind),
                     (fmt_value(name, m.get("value")), kind), (ci, kind),
                     ("—" if n is None else f"{int(n):,}", "count"), (delta, kind),
                     _e(str(m.get("verdict") or "").replace("_", " "))])
    return _table(["metric", "stage", "unit", "baseline", "candidate", "95% CI", "n", "delta", "paired verdict"], rows,
                  "Candidate aggregates with their 95% interval and sample size n, the baseline beside them.")


def incident_note(sc: Scorecard) -> Html:
    inc = sc.incident
    if not inc:
        return Html("<p><em>No incident: the candidate did not regress against the baseline.</em></p>")
    from pathlib import Path

    import mistune  # nbconvert's markdown renderer

    p = Path(str(inc["note"]))
    text = p.read_text(encoding="utf-8") if p.is_file() else str(inc.get("summary"))
    # the note's headings sit under this section's h2: demote them two levels
    text = re.sub(r"^(#{1,4}) ", lambda m: "#" * min(6, len(m.group(1)) + 2) + " ", text, flags=re.M)
    # escape=True: any markup in case text shows as text, never as HTML
    body = _number_cells(str(mistune.create_markdown(escape=True, plugins=["table"])(text)))
    return Html(f'<div style="background:{SOFT};padding:4px 16px;border-radius:6px;font-size:.9rem">'
                f"{body}</div>")


_TABLE = re.compile(r"<table>.*?</table>", re.S)
_CELL = re.compile(r"<t([hd])>(.*?)</t[hd]>", re.S)
_NUMBER = re.compile(r"^[\[\]()+\-−,.\d\s]+$")


def _number_cells(body: str) -> str:
    """The note's number cells classed with their kind (NUMBER_KINDS): a metric row's values by
    the metric's unit (the note has a unit column), a p-value column as p, a stage's normalised
    delta as 'norm'; other numbers as counts."""

    def table(m: re.Match[str]) -> str:
        heads = [c for t, c in _CELL.findall(m.group(0)) if t == "h"]
        rows = re.split(r"(?=<tr>)", m.group(0))
        return "".join(_row(r, heads) for r in rows)

    return _TABLE.sub(table, body)


def _row(row: str, heads: list[str]) -> str:
    cells = [c for t, c in _CELL.findall(row) if t == "d"]
    if not cells:
        return row
    from labkit.metrics import METRICS

    unit = unit_of(cells[0]) if cells[0] in METRICS else None
    out, k = [], 0
    for piece in re.split(r"(<td>.*?</td>)", row, flags=re.S):
        if piece.startswith("<td>"):
            text = piece[4:-5]
            head = heads[k] if k < len(heads) else ""
            k += 1
            if _NUMBER.match(text) and any(ch.isdigit() for ch in text):
                kind = "p" if head.startswith("p ") else "norm" if "normalised" in head else (
                    UNIT_KINDS[unit] if unit else "count")
                piece = f'<td class="{num_class(kind)}">{text}</td>'
        out.append(piece)
    return "".join(out)


def summary_line(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())
