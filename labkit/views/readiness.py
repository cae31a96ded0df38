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
)
from labkit.readiness.scorecard import Scorecard

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


def _table(head: list[str], rows: list[list[str]], caption: str = "") -> Html:
    th = "".join(f'<th style="text-align:left;padding:4px 8px;border-bottom:2px solid {LINE}">{_e(h)}</th>'
                 for h in head)
    body = "".join("<tr>" + "".join(f'<td style="padding:4px 8px;border-bottom:1px solid {FAINT_LINE};'
                                     f'vertical-align:top">{c}</td>' for c in r) + "</tr>" for r in rows)
    cap = (f'<caption style="caption-side:bottom;text-align:left;color:{MUTED_COLOUR};font-size:.9rem;padding-top:4px">'
           f"{_e(caption)}</caption>") if caption else ""
    return Html(f'<table class="lk-table" style="border-collapse:collapse;margin:8px 0;font-size:.92rem">{cap}'
                f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")


def verdict_banner(sc: Scorecard) -> Any:
    """The verdict as the report engine's banner (its status feeds the report index)."""
    return Verdict(sc.verdict_status, sc.headline(), sc.notes[0] if sc.notes else sc.rule)


def verdict_rule(sc: Scorecard) -> Html:
    return Html(f'<p style="color:{MUTED_COLOUR}"><strong>Rule.</strong> {_e(sc.rule)}</p>')


def area_table(sc: Scorecard) -> Html:
    rows = []
    for a, v in sc.areas.items():
        score = v["score"]
        colour = MUTED_COLOUR if score is None else (PASS_COLOUR if score >= 80 else WARN_COLOUR if score >= 50
                                                     else FAIL_COLOUR)
        bar = "" if score is None else (f'<div style="background:{FAINT_LINE};width:120px;height:10px;border-radius:3px">'
                                         f'<div style="background:{colour};width:{int(1.2 * score)}px;height:10px;'
                                         'border-radius:3px"></div></div>')
        rows.append([_e(a), f'<strong style="color:{colour}">{"—" if score is None else score}</strong>', bar,
                     _e(v["pass"]), _e(v["attested"]), _e(v["fail"]), _e(v["unknown"])])
    return _table(["area", "score", "", "pass", "attested", "fail", "unknown"], rows,
                  "Score per area out of 100 (severity-weighted; attested counts 0.75).")


def gaps_table(sc: Scorecard) -> Html:
    if not sc.gaps:
        return Html("<p><em>No gap: every item passes or is attested.</em></p>")
    rows = [[_e(g["rank"]), _sev(g["severity"]), _badge(g["status"]), f"<code>{_e(g['item'])}</code><br>{_e(g['title'])}",
             _e(g["evidence"]), _e(g["action"])] for g in sc.gaps]
    return _table(["#", "severity", "status", "item", "evidence", "action that closes it"], rows,
                  "Gaps ranked by severity, failures before unknowns.")


def checklist_table(sc: Scorecard, checklist: str) -> Html:
    items = sc.checklist(checklist)
    if not items:
        return Html(f"<p><em>No {_e(checklist)} items.</em></p>")
    rows = [[_badge(i.status), f"{_e(i.title)}<br><code style='color:{MUTED_COLOUR}'>{_e(i.id)}</code>", _sev(i.severity),
             _e(i.evidence), _e(i.action or "")] for i in items]
    return _table(["status", "item", "severity", "evidence", "action"], rows)


def slo_table(sc: Scorecard) -> Html:
    if not sc.slos:
        return Html("<p><em>No SLO evaluated (no SLO file or no run history).</em></p>")
    rows = []
    for s in sc.slos:
        rem = "—" if s.budget_remaining is None else f"{s.budget_remaining:.0%}"
        burn = "—" if s.burn_rate is None else f"{s.burn_rate:.2f}×"
        obs = "—" if s.observed is None else f"{s.observed:.4g}"
        rows.append([_e(s.name), _e(s.target), _badge(s.status), _e(obs), _e(rem), _e(burn), _e(s.n)])
    return _table(["SLO", "objective", "status", "observed", "budget remaining", "burn rate", "n"], rows,
                  "Budget consumed = bad ratio over the history / allowance; burn rate = the same over the "
                  "recent window (1.0× spends the budget exactly).")


def rollout_table(sc: Scorecard) -> Html:
    if sc.rollout is None:
        return Html("<p><em>No rollout plan.</em></p>")
    rows = []
    for st in sc.rollout.stages:
        reqs = "<br>".join(f"{'✔' if r['passed'] else '✘'} {_e(r['require'])}: {_e(r['evidence'])}"
                           for r in st.requirements)
        trig = "<br>".join(f"{_e(t['trigger'])} (now {_e(fmt_number(t['observed']))})"
                           + (f" <strong style='color:{FAIL_COLOUR}'>would fire</strong>" if t["would_fire"] else "")
                           for t in st.triggers)
        rows.append([f"<strong>{_e(st.name)}</strong>", _e(f"{st.traffic_percent:g}%"),
                     _badge("pass" if st.supported else "fail"), reqs, trig])
    supported = sc.rollout.supported_stage or "no stage"
    return Html(_table(["stage", "traffic", "supported", "requirements (gate)", "rollback triggers"], rows).html
                + f"<p><strong>The evidence supports: {_e(supported)}.</strong> Rollback target: "
                f"<code>{_e(sc.rollout.rollback_to or 'none')}</code>.</p>")


def key_metrics_table(sc: Scorecard) -> Html:
    rows = []
    for m in sc.key_metrics:
        name = str(m["metric"])
        ci = f"[{fmt_value(name, m.get('ci_low'))} – {fmt_value(name, m.get('ci_high'))}]"
        d = m.get("delta")
        delta = "—" if d is None else ("+" if float(d) >= 0 else "−") + fmt_value(name, abs(float(d)))
        rows.append([_e(name), _e(m.get("stage")), _e(fmt_value(name, m.get("baseline"))),
                     _e(fmt_value(name, m.get("value"))), _e(ci), _e(delta),
                     _e(str(m.get("verdict") or "").replace("_", " "))])
    return _table(["metric", "stage", "baseline", "candidate", "95% CI", "delta", "paired verdict"], rows)


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
    body = mistune.create_markdown(escape=True, plugins=["table"])(text)
    return Html(f'<div style="background:{SOFT};padding:4px 16px;border-radius:6px;font-size:.9rem">'
                f"{body}</div>")


def summary_line(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())
