"""Alert rules (YAML) evaluated over trace history, producing alert events.

Rules file::

    version: 1
    rules:
      - name: latency-p95-spike
        kind: latency          # latency | cost | error_rate | burn_rate
        stat: p95              # latency/cost: p50 | p90 | p95 | p99 | mean | max | sum
        window: 5m             # a duration > 0 (30s, 5m, 1h, 1d) or a number of traces >= 1 (e.g. 50)
        threshold: 3500        # fire when the window's value is above it (ms, USD, ratio): >= 0 (error_rate: < 1)
        factor: 2.0            # optional, > 1: also fire when value > factor × the previous window's
        min_traces: 20         # windows with fewer traces are not judged (a whole number >= 1; default 1)
        severity: page         # free text, copied to the event
        where: {pipeline: baseline}   # optional: only traces whose fields equal these
      - name: error-budget-burn
        kind: burn_rate
        slo: 0.99              # target share of good traces
        bad: error             # error (status not ok) | latency (latency_ms > latency_ms) | blocked
        latency_ms: 3500       # with bad: latency (> 0)
        windows:               # multi-window: fire when both windows of a pair burn ≥ its burn_rate (> 0)
          - {long: 1h, short: 5m, burn_rate: 14.4}
          - {long: 6h, short: 30m, burn_rate: 6}

burn rate = (bad traces / traces in the window) / (1 − slo). A threshold
rule fires when the value exceeds ``threshold`` or ``factor`` × the value of
the window just before; a burn-rate pair fires when both its long and its
short window burn at least ``burn_rate``. Windows are evaluated at a step of
a quarter of the (shortest) window over the trace history (time windows end
at trace end times, count windows slide over traces sorted by end time);
consecutive firing evaluations merge into one event with the peak numbers.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labkit.errors import ConfigError, DatasetError, Problem

KINDS = ("latency", "cost", "error_rate", "burn_rate")
STATS = ("p50", "p90", "p95", "p99", "mean", "max", "sum")
BAD = ("error", "latency", "blocked")
_RULE_KEYS = {
    "latency": ("name", "kind", "stat", "window", "threshold", "factor", "min_traces", "severity", "where", "description"),
    "cost": ("name", "kind", "stat", "window", "threshold", "factor", "min_traces", "severity", "where", "description"),
    "error_rate": ("name", "kind", "window", "threshold", "factor", "min_traces", "severity", "where", "description"),
    "burn_rate": ("name", "kind", "slo", "bad", "latency_ms", "windows", "min_traces", "severity", "where", "description"),
}
_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Window:
    """A time window (``seconds``) or a count window (``traces``)."""

    seconds: float | None = None
    traces: int | None = None

    def __str__(self) -> str:
        if self.traces is not None:
            return f"{self.traces} traces"
        s = float(self.seconds or 0)
        for u, k in (("d", 86400), ("h", 3600), ("m", 60)):
            if s >= k and s % k == 0:
                return f"{int(s // k)}{u}"
        return f"{s:g}s"


def parse_window(val: Any, fld: str, path: str | None = None) -> Window:
    """A duration longer than 0 s (``30s``, ``5m``, ``1h``, ``1d``) or a count of at least 1 trace
    (``50``, ``"50"``, ``"50 traces"``); a ConfigError naming the field otherwise."""
    if isinstance(val, bool):
        raise ConfigError("must be a duration like 5m or a number of traces", path=path, field=fld)
    count: int | None = val if isinstance(val, int) else None
    if isinstance(val, str):
        m = _DUR.match(val)
        if m:
            seconds = float(m.group(1)) * _UNIT[m.group(2)]
            if seconds <= 0:
                raise ConfigError(f"window {val!r} is empty: a duration must be longer than 0s",
                                  path=path, field=fld)
            return Window(seconds=seconds)
        m2 = re.match(r"^\s*(\d+)\s*(?:traces?)?\s*$", val)
        if m2:
            count = int(m2.group(1))
    if count is None:
        raise ConfigError(f"bad window {val!r}: use a duration (30s, 5m, 1h, 1d) or a trace count",
                          path=path, field=fld)
    if count < 1:
        raise ConfigError("a count window needs at least 1 trace", path=path, field=fld)
    return Window(traces=count)


@dataclass(frozen=True)
class AlertRule:
    name: str
    kind: str
    window: Window | None = None
    stat: str = "p95"
    threshold: float | None = None
    factor: float | None = None
    min_traces: int = 1
    severity: str = "ticket"
    where: Mapping[str, Any] = field(default_factory=dict)
    slo: float | None = None
    bad: str = "error"
    latency_ms: float | None = None
    windows: tuple[tuple[Window, Window, float], ...] = ()
    description: str = ""


def _num(v: Any, fld: str, path: str | None, *, above: float | None = None, at_least: float | None = None,
         why: str = "") -> float:
    """``v`` as a finite number, above ``above`` / at least ``at_least`` when given; a ConfigError
    naming the field (and, in ``why``, what a value out of bounds would do) otherwise."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ConfigError(f"must be a finite number, got {v!r}", path=path, field=fld)
    x = float(v)
    if above is not None and x <= above:
        bound = f"above {above:g}"
    elif at_least is not None and x < at_least:
        bound = f"at least {at_least:g}"
    else:
        return x
    raise ConfigError(f"must be {bound}, got {v!r}" + (f": {why}" if why else ""), path=path, field=fld)


def _count(v: Any, fld: str, path: str | None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"must be a whole number of traces, at least 1, got {v!r}", path=path, field=fld)
    return v


def parse_rules(obj: Any, path: str | None = None) -> list[AlertRule]:
    """Validate a rules document (the parsed YAML)."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("rules"), list):
        raise ConfigError("an alert rules file needs a `rules:` list", path=path, field="rules")
    rules: list[AlertRule] = []
    names: set[str] = set()
    for i, r in enumerate(obj["rules"]):
        at = f"rules[{i}]"
        if not isinstance(r, Mapping):
            raise ConfigError("must be a mapping", path=path, field=at)
        kind = r.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"unknown kind {kind!r}", path=path, field=f"{at}.kind", known=KINDS)
        for key in r:
            if key not in _RULE_KEYS[kind]:
                raise ConfigError(f"unknown key {key!r} for a {kind} rule", path=path,
                                  field=f"{at}.{key}", known=_RULE_KEYS[kind])
        name = str(r.get("name") or f"{kind}-{i}")
        if name in names:
            raise ConfigError(f"duplicate rule name {name!r}", path=path, field=f"{at}.name")
        names.add(name)
        where = r.get("where") or {}
        if not isinstance(where, Mapping):
            raise ConfigError("must be a mapping field -> value", path=path, field=f"{at}.where")
        common: dict[str, Any] = {"name": name, "kind": kind, "severity": str(r.get("severity", "ticket")),
                                  "where": dict(where),
                                  "min_traces": _count(r.get("min_traces", 1), f"{at}.min_traces", path),
                                  "description": str(r.get("description", ""))}
        parse = _burn_rule if kind == "burn_rate" else _threshold_rule
        rules.append(AlertRule(**common, **parse(r, at, path)))
    return rules


def _burn_rule(r: Mapping[str, Any], at: str, path: str | None) -> dict[str, Any]:
    """The fields of a burn-rate rule ``r`` (at ``at`` of the file)."""
    slo = _num(r.get("slo"), f"{at}.slo", path)
    if not 0 < slo < 1:
        raise ConfigError("slo must be in (0, 1), e.g. 0.99", path=path, field=f"{at}.slo")
    bad = str(r.get("bad", "error"))
    if bad not in BAD:
        raise ConfigError(f"unknown bad-event kind {bad!r}", path=path, field=f"{at}.bad", known=BAD)
    lat = r.get("latency_ms")
    if bad == "latency" and lat is None:
        raise ConfigError("bad: latency needs latency_ms", path=path, field=f"{at}.latency_ms")
    wins_raw = r.get("windows")
    if not isinstance(wins_raw, list) or not wins_raw:
        raise ConfigError("needs a list of {long, short, burn_rate}", path=path, field=f"{at}.windows")
    wins = []
    for j, w in enumerate(wins_raw):
        if not isinstance(w, Mapping) or {"long", "short", "burn_rate"} - set(w):
            raise ConfigError("must be {long, short, burn_rate}", path=path, field=f"{at}.windows[{j}]")
        long, short = (parse_window(w[k], f"{at}.windows[{j}].{k}", path) for k in ("long", "short"))
        if (long.seconds is None) != (short.seconds is None):  # (two durations, or two counts)
            raise ConfigError(f"the long window ({long}) and the short one ({short}) must both be durations or both "
                              "counts of traces", path=path, field=f"{at}.windows[{j}].short")
        if (short.seconds or short.traces or 0) >= (long.seconds or long.traces or 0):
            raise ConfigError(f"the short window ({short}) must be shorter than the long one ({long}): it confirms "
                              "that the long window's burn is still going on", path=path, field=f"{at}.windows[{j}].short")
        wins.append((long, short, _num(w["burn_rate"], f"{at}.windows[{j}].burn_rate", path, above=0,
                                       why="every window burns at least 0: the pair would fire on all of them")))
    return {"slo": slo, "bad": bad, "windows": tuple(wins),
            "latency_ms": _num(lat, f"{at}.latency_ms", path, above=0) if lat is not None else None}


def _threshold_rule(r: Mapping[str, Any], at: str, path: str | None) -> dict[str, Any]:
    """The fields of a latency, cost or error_rate rule ``r`` (at ``at`` of the file)."""
    kind = r["kind"]
    if "window" not in r:
        raise ConfigError("missing", path=path, field=f"{at}.window")
    win = parse_window(r["window"], f"{at}.window", path)
    thr, fac = r.get("threshold"), r.get("factor")
    if thr is None and fac is None:
        raise ConfigError("needs a threshold and/or a factor", path=path, field=f"{at}.threshold")
    stat = str(r.get("stat", "p95" if kind == "latency" else "mean"))
    if kind != "error_rate" and stat not in STATS:
        raise ConfigError(f"unknown stat {stat!r}", path=path, field=f"{at}.stat", known=STATS)
    threshold = None
    if thr is not None:
        threshold = _num(thr, f"{at}.threshold", path, at_least=0,
                         why="latency, cost and error rate are never negative: the rule would fire on every window")
        if kind == "error_rate" and threshold >= 1:
            raise ConfigError(f"must be below 1, got {thr!r}: the error rate is a share of traces, at most 1, "
                              "so the rule would never fire (10% is 0.1)", path=path, field=f"{at}.threshold")
    factor = None if fac is None else _num(
        fac, f"{at}.factor", path, above=1,
        why="the rule fires when the value exceeds factor × the previous window's: "
            "at 1 any rise fires it, below 1 steady traffic does")
    return {"window": win, "stat": stat, "threshold": threshold, "factor": factor}


def load_rules(path: str | os.PathLike[str]) -> list[AlertRule]:
    """Load and validate an alert rules YAML file."""
    from labkit.config import read_yaml_text

    obj, _ = read_yaml_text(path, what="alert rules file")
    return parse_rules(obj, str(path))


# ------------------------------------------------------------------ evaluation

def _stat(vals: np.ndarray, stat: str) -> float:
    if vals.size == 0:
        return math.nan
    if stat == "mean":
        return float(vals.mean())
    if stat == "max":
        return float(vals.max())
    if stat == "sum":
        return float(vals.sum())
    return float(np.percentile(vals, float(stat[1:])))


def _frame(traces: Any) -> Any:
    import pandas as pd

    if isinstance(traces, pd.DataFrame):
        return traces
    return pd.DataFrame(list(traces))


def _bounds(ts: np.ndarray, end_idx: int, win: Window) -> int:
    """Start index (inclusive) of the window ending at trace ``end_idx`` (inclusive)."""
    if win.traces is not None:
        return max(0, end_idx + 1 - win.traces)
    return int(np.searchsorted(ts, ts[end_idx] - float(win.seconds or 0), side="right"))


def _eval_points(ts: np.ndarray, win: Window) -> list[int]:
    n = len(ts)
    if n == 0:
        return []
    if win.traces is not None:
        step = max(1, win.traces // 4)
        pts = list(range(min(win.traces, n) - 1, n, step))
    else:
        # the window ends every quarter window from the first trace on: at each the last trace by
        # then, i.e. the last trace of each run of traces that fall before one grid time (a grid of
        # the times alone, not of the quiet stretches between them)
        step_s = max(float(win.seconds or 0) / 4.0, 1e-9)
        cell = np.ceil((ts - ts[0]) / step_s)
        pts = np.flatnonzero(np.r_[cell[1:] != cell[:-1], True]).tolist()
    if pts[-1] != n - 1:
        pts.append(n - 1)
    return pts


def evaluate_alerts(rules: Sequence[AlertRule] | str | os.PathLike[str], traces: Any) -> list[dict[str, Any]]:
    """Alert events fired by ``rules`` over ``traces`` (records or a DataFrame of the
    ``traces`` table: needs ts_end or ts_start, latency_ms, cost_usd, status). A trace is
    placed in time at its ``ts_end``, at its ``ts_start`` when its end is null; one with
    neither has no place in any window and is refused (a :class:`DatasetError` naming the
    records, by position and trace id), not left out of the verdict; a null latency is
    unmeasured (no latency rule counts it).

    Each event: rule, kind, severity, window, fired_at, last_at (ISO UTC of the
    first and last firing window end), evaluations (how many windows fired),
    value / threshold / baseline / factor (threshold rules) or burn rates
    per window pair with slo and bad counts (burn rate), n_traces.
    """
    if isinstance(rules, str | os.PathLike):
        rules = load_rules(rules)
    df = _frame(traces)
    events: list[dict[str, Any]] = []
    if df.empty:
        return events
    if "ts_end" not in df and "ts_start" not in df:
        raise ConfigError("traces have no ts_end/ts_start: alerts need timestamps", field="ts_end")
    # a trace is placed at its end; one whose end is unknown (ts_end null: an import whose file
    # records none) at its start; one with neither has no place in time: refused, not left out
    ends = df["ts_end"].astype(float) if "ts_end" in df else None
    starts = df["ts_start"].astype(float) if "ts_start" in df else None
    ts_col = starts if ends is None else ends if starts is None else ends.fillna(starts)
    _refuse_untimed(df, ts_col)
    base = df.assign(_ts=ts_col).sort_values("_ts", kind="stable")
    for rule in rules:
        sub = base
        for k, v in rule.where.items():
            if k not in sub:
                raise ConfigError(f"unknown field {k!r} in where", field=f"{rule.name}.where",
                                  known=[str(c) for c in base.columns if not str(c).startswith("_")])
            sub = sub[sub[k] == v]
        if sub.empty:
            continue
        if rule.kind == "burn_rate":
            events.extend(_eval_burn(rule, sub))
        else:
            events.extend(_eval_threshold(rule, sub))
    return events


def _refuse_untimed(df: Any, ts: Any, shown: int = 5) -> None:
    """A DatasetError naming the records (1-based position, trace id when there is one) whose
    time ``ts`` is null: with neither ts_end nor ts_start, no window can count them."""
    at = np.flatnonzero(ts.isna().to_numpy())
    if not at.size:
        return
    ids = df["trace_id"].to_numpy() if "trace_id" in df else None
    named = [f"record {i + 1}" + (f" (trace {ids[i]})" if ids is not None and isinstance(ids[i], str) else "")
             for i in at[:shown]]
    more = f" and {at.size - shown} more" if at.size > shown else ""
    raise DatasetError(None, [Problem(None, None, (
        f"{at.size} trace(s) with neither ts_end nor ts_start have no place in time, so no alert window can "
        f"count them: {', '.join(named)}{more}"))])


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, tz=dt.UTC).isoformat(timespec="seconds")


def _merge(fired: list[tuple[int, dict[str, Any]]], points: list[int], key: str) -> list[dict[str, Any]]:
    """Merge firings at consecutive evaluation points into one event (peak of ``key``)."""
    out: list[dict[str, Any]] = []
    pos = {p: i for i, p in enumerate(points)}
    prev = -2
    for p, ev in fired:
        i = pos[p]
        if out and i == prev + 1:
            cur = out[-1]
            cur["evaluations"] += 1
            cur["last_at"] = ev["fired_at"]
            if (ev.get(key) or 0) > (cur.get(key) or 0):
                keep = {k: cur[k] for k in ("fired_at", "evaluations")}
                cur.update(ev)
                cur.update(keep)
                cur["last_at"] = ev["fired_at"]
        else:
            ev = dict(ev)
            ev["evaluations"] = 1
            ev["last_at"] = ev["fired_at"]
            out.append(ev)
        prev = i
    return out


def _latencies(df: Any) -> np.ndarray:
    """Each trace's latency, NaN where it is unmeasured: none recorded, or a cache hit's (the time
    of the call that made the answer, not of this one)."""
    vals = df["latency_ms"].to_numpy(dtype=float)
    if "from_cache" in df:
        vals = np.where(df["from_cache"].fillna(False).astype(bool).to_numpy(), np.nan, vals)
    return np.asarray(vals, dtype=float)


def _eval_threshold(rule: AlertRule, df: Any) -> list[dict[str, Any]]:
    assert rule.window is not None
    ts = df["_ts"].to_numpy(dtype=float)
    if rule.kind == "latency":
        vals = _latencies(df)
    elif rule.kind == "cost":
        vals = df["cost_usd"].to_numpy(dtype=float) if "cost_usd" in df else np.full(len(df), np.nan)
    else:
        vals = (~df["status"].isin(["ok", "pass"])).to_numpy(dtype=float)
    points = _eval_points(ts, rule.window)
    fired: list[tuple[int, dict[str, Any]]] = []
    for p in points:
        lo = _bounds(ts, p, rule.window)
        w = vals[lo : p + 1]
        w = w[~np.isnan(w)]
        if w.size < max(1, rule.min_traces):
            continue
        value = float(w.mean()) if rule.kind == "error_rate" else _stat(w, rule.stat)
        baseline = math.nan
        if rule.factor is not None and lo > 0:
            # the window just before this one, same size
            if rule.window.traces is not None:
                blo = max(0, lo - rule.window.traces)
            else:
                blo = int(np.searchsorted(ts, ts[lo - 1] - float(rule.window.seconds or 0), side="right"))
            b = vals[blo:lo]
            b = b[~np.isnan(b)]
            if b.size >= max(1, rule.min_traces):
                baseline = float(b.mean()) if rule.kind == "error_rate" else _stat(b, rule.stat)
        over_abs = rule.threshold is not None and value > rule.threshold
        over_rel = rule.factor is not None and not math.isnan(baseline) and value > rule.factor * baseline
        if over_abs or over_rel:
            fired.append((p, {
                "rule": rule.name, "kind": rule.kind, "severity": rule.severity,
                "stat": "rate" if rule.kind == "error_rate" else rule.stat,
                "window": str(rule.window), "fired_at": _iso(ts[p]),
                "value": round(value, 6), "threshold": rule.threshold,
                "baseline": None if math.isnan(baseline) else round(baseline, 6),
                "factor": rule.factor,
                "reason": "threshold" if over_abs else "factor",
                "n_traces": int(w.size),
            }))
    return _merge(fired, points, "value")


def _eval_burn(rule: AlertRule, df: Any) -> list[dict[str, Any]]:
    assert rule.slo is not None
    ts = df["_ts"].to_numpy(dtype=float)
    if rule.bad == "error":
        bad = (~df["status"].isin(["ok", "pass", "blocked"])).to_numpy(dtype=float)
    elif rule.bad == "blocked":
        bad = (df["status"] == "blocked").to_numpy(dtype=float)
    else:
        lat = _latencies(df)
        bad = np.where(np.isnan(lat), np.nan, (lat > float(rule.latency_ms or 0)).astype(float))
    counted = np.concatenate([[0], np.cumsum(~np.isnan(bad))])  # a latency unmeasured is neither good nor bad
    bad = np.nan_to_num(bad)
    budget = 1.0 - rule.slo
    shortest = min((w for pair in rule.windows for w in pair[:2]),
                   key=lambda w: (w.traces if w.traces is not None else 0, w.seconds or 0))
    points = _eval_points(ts, shortest)
    csum = np.concatenate([[0.0], np.cumsum(bad)])
    fired: list[tuple[int, dict[str, Any]]] = []
    for p in points:
        pairs = []
        for long_w, short_w, thr in rule.windows:
            entry: dict[str, Any] = {"long": str(long_w), "short": str(short_w), "burn_rate_threshold": thr}
            over = True  # a pair fires when both its windows burn at or above its threshold
            for label, w in (("long", long_w), ("short", short_w)):
                lo = _bounds(ts, p, w)
                n = int(counted[p + 1] - counted[lo])
                nbad = float(csum[p + 1] - csum[lo])
                ratio = nbad / n if n else 0.0
                entry[f"{label}_burn_rate"] = round(ratio / budget, 4)
                entry[f"{label}_bad"] = int(nbad)
                entry[f"{label}_traces"] = int(n)
                if n < max(1, rule.min_traces) or ratio / budget < thr:
                    over = False
            entry["fired"] = over
            pairs.append(entry)
        hot = [e for e in pairs if e["fired"]]
        if hot:  # the rule fires when any one of its pairs does
            fired.append((p, {
                "rule": rule.name, "kind": "burn_rate", "severity": rule.severity,
                "slo": rule.slo, "bad": rule.bad, "fired_at": _iso(ts[p]),
                "window": "; ".join(f"{e['long']}/{e['short']}" for e in hot),
                "value": max(e["short_burn_rate"] for e in hot),
                "windows": pairs,
                "n_traces": max(e["long_traces"] for e in hot),
            }))
    return _merge(fired, points, "value")


def rules_summary(rules: Iterable[AlertRule]) -> dict[str, list[str]]:
    """Rule names by kind (used by the observability checklist)."""
    out: dict[str, list[str]] = {k: [] for k in KINDS}
    for r in rules:
        out[r.kind].append(r.name)
    return out
