"""What a results line may claim: one validator for the runner, the cache and the reader.

Two layers:

* :func:`to_json_value` turns what a pipeline returned into plain JSON values
  (tuples -> lists, dataclasses -> objects, numpy scalars -> numbers) and refuses
  what JSON cannot hold faithfully — a non-finite float, an integer beyond 64
  bits, a cycle, nesting deeper than :data:`MAX_DEPTH`, a string with a lone
  surrogate, a non-string key — with a :class:`ResultError` naming the path
  (``$.usage.input_tokens``). It never recurses without bound and never raises
  anything else.
* :func:`check_line` validates one results line (from a pipeline, a cache entry
  or results.jsonl) against the contract of docs/formats.md ("What a results
  line may claim") and returns it with every contract field present.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from labkit.errors import Problem, ResultError

__all__ = [
    "MAX_COST_USD",
    "MAX_DEPTH",
    "MAX_LATENCY_MS",
    "MAX_TOKENS",
    "RESULT_DEFAULTS",
    "STATUSES",
    "ResultError",
    "cache_entry",
    "check_line",
    "problems_text",
    "to_json_value",
]

STATUSES = ("ok", "error", "timeout", "blocked")
#: Nesting levels a result value may have (a results line is read back by tools with limits).
MAX_DEPTH = 64
#: Integers must fit in a signed 64-bit integer (trace store, data frames).
INT_LIMIT = 2**63

#: Fields of a results line and the value a line that lacks them is read with.
RESULT_DEFAULTS: dict[str, Any] = {
    "status": "ok",
    "answer": None,
    "retrieved": [],
    "citations": [],
    "tool_calls": [],
    "usage": None,
    "cost_usd": None,
    "latency_ms": None,
    "attempts": 1,
    "error": None,
    "trace_id": None,
    "from_cache": False,
}
#: The most one results line may claim (docs/formats.md): beyond these a value is not a
#: measurement, and a sum of many lines could overflow (a float to inf, a count past 64 bits).
MAX_COST_USD = 1e9
MAX_LATENCY_MS = 1e10
MAX_TOKENS = 10**12
_NUMBER_BOUNDS = {"cost_usd": (MAX_COST_USD, "1e9 USD"), "latency_ms": (MAX_LATENCY_MS, "1e10 ms")}
#: Token-count names other systems log, read as labkit's (input_tokens, output_tokens).
USAGE_ALIASES = {"prompt_tokens": "input_tokens", "completion_tokens": "output_tokens"}
_ID_FIELDS = ("trace_id", "error_type", "answered_by", "idempotency_key")
_ABSENT = object()


# --------------------------------------------------------------------------- JSON values


def _where(path: list[str]) -> str:
    parts = path if len(path) <= 8 else [*path[:6], ".…", *path[-1:]]
    return "$" + "".join(parts)


def _key_part(key: str) -> str:
    return f".{key}" if len(key) <= 40 else f".{key[:37]}..."


def _valid_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_json_value(x: Any) -> Any:
    """Plain JSON values from ``x``; a :class:`ResultError` naming the path for anything else."""
    try:
        return _conv(x, [], set())
    except ResultError:
        raise
    except RecursionError:
        raise ResultError(f"result is nested too deeply to read (more than {MAX_DEPTH} levels)") from None
    except Exception as e:  # a mapping whose items() raises, an item() that fails ...
        raise ResultError(f"result could not be read: {type(e).__name__}: {e}") from None


def _conv(x: Any, path: list[str], active: set[int]) -> Any:
    t = type(x)
    if t is str:
        if not _valid_text(x):
            raise ResultError(f"result holds text that is not valid Unicode (a lone surrogate) at {_where(path)}")
        return x
    if x is None or t is bool:
        return x
    if t is int or (isinstance(x, int) and not isinstance(x, bool)):
        if not -INT_LIMIT <= x < INT_LIMIT:
            raise ResultError(f"result holds an integer too large (beyond 64 bits) at {_where(path)}")
        return int(x)
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ResultError(f"result holds a non-finite number {float(x)!r} at {_where(path)}")
        return float(x)
    if isinstance(x, str):
        return _conv(str.__str__(x), path, active)
    if isinstance(x, (Mapping, list, tuple)) or (dataclasses.is_dataclass(x) and not isinstance(x, type)):
        return _container(x, path, active)
    item = getattr(x, "item", None)  # numpy scalars
    if callable(item):
        v = item()
        if v is not x and not hasattr(v, "item"):
            return _conv(v, path, active)
    raise ResultError(f"result holds a value that is not JSON ({type(x).__name__}) at {_where(path)}")


def _container(x: Any, path: list[str], active: set[int]) -> Any:
    if len(path) >= MAX_DEPTH:
        raise ResultError(f"result is nested deeper than {MAX_DEPTH} levels at {_where(path)}")
    if id(x) in active:
        raise ResultError(f"result refers to itself (a cycle) at {_where(path)}")
    active.add(id(x))
    try:
        if isinstance(x, Mapping) or dataclasses.is_dataclass(x):
            items = x.items() if isinstance(x, Mapping) else (
                (f.name, getattr(x, f.name)) for f in dataclasses.fields(x))
            out: dict[str, Any] = {}
            for k, v in items:
                if not isinstance(k, str):
                    raise ResultError(f"result holds a key that is not a string ({type(k).__name__} {k!r:.40}) "
                                      f"at {_where(path)}")
                key = _conv(k, path, active)
                path.append(_key_part(key))
                out[key] = _conv(v, path, active)
                path.pop()
            return out
        lst = []
        for i, v in enumerate(x):
            path.append(f"[{i}]")
            lst.append(_conv(v, path, active))
            path.pop()
        return lst
    finally:
        active.discard(id(x))


# --------------------------------------------------------------------------- the line contract


def _finite(x: Any) -> bool:
    t = type(x)
    if t is float:  # the common cases first, decided by their exact type
        return math.isfinite(x)
    if t is int:
        return -INT_LIMIT <= x < INT_LIMIT
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    if isinstance(x, int):
        return -INT_LIMIT <= x < INT_LIMIT
    return math.isfinite(x)


def _count(x: Any) -> bool:
    """A token count: a non-negative integer (an integral float such as 812.0 is read as one)."""
    return _finite(x) and x >= 0 and float(x).is_integer()


def _usage_aliases(usage: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(usage)
    for alias, name in USAGE_ALIASES.items():
        if alias in out and name not in out:
            out[name] = out[alias]
    return out


def _check_retrieved(raw: Any, line: int | None, out: list[Problem]) -> list[dict[str, Any]]:
    retrieved: list[dict[str, Any]] = []
    if raw is None:
        return retrieved
    if not isinstance(raw, list):
        out.append(Problem(line, "retrieved", "must be a list"))
        return retrieved
    for i, it in enumerate(raw):
        if isinstance(it, dict) and isinstance(iid := it.get("id"), str) and iid:
            score, text = it.get("score"), it.get("text")
            if score is not None and not _finite(score):
                out.append(Problem(line, f"retrieved[{i}].score", f"must be a finite number, got {score!r}"))
            if text is not None and not isinstance(text, str):
                out.append(Problem(line, f"retrieved[{i}].text", "must be a string"))
            retrieved.append(it)
        elif isinstance(it, str) and it:
            retrieved.append({"id": it})
        elif isinstance(it, dict):
            out.append(Problem(line, f"retrieved[{i}]", "an object without an 'id'") if "id" not in it else
                       Problem(line, f"retrieved[{i}].id", "must be a non-empty string, got "
                               + ("an empty one" if it["id"] == "" else "null" if it["id"] is None
                                  else type(it["id"]).__name__)))
        else:
            out.append(Problem(line, f"retrieved[{i}]", "must be an id string or an object with an 'id'"))
    return retrieved


def _check_lists(obj: Mapping[str, Any], line: int | None, out: list[Problem]) -> None:
    cites = obj.get("citations")
    if cites is not None and (not isinstance(cites, list) or not all(isinstance(c, str) for c in cites)):
        out.append(Problem(line, "citations", "must be a list of strings"))
    tools = obj.get("tool_calls")
    if tools is None:
        return
    if not isinstance(tools, list):
        out.append(Problem(line, "tool_calls", "must be a list"))
        return
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            out.append(Problem(line, f"tool_calls[{i}]", "must be an object with a 'name'"))
        elif t.get("args") is not None and not isinstance(t.get("args"), dict):
            out.append(Problem(line, f"tool_calls[{i}].args", "must be an object"))


def _check_numbers(obj: Mapping[str, Any], line: int | None, out: list[Problem]) -> dict[str, Any] | None:
    usage = obj.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            out.append(Problem(line, "usage", "must be an object"))
            usage = None
        else:
            usage = _usage_aliases(usage)
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                v = usage.get(key)
                if v is None or (type(v) is int and 0 <= v <= MAX_TOKENS):  # (the common case: as it is)
                    continue
                if not _count(v):
                    out.append(Problem(line, f"usage.{key}", f"must be a non-negative integer, got {v!r}"))
                elif v > MAX_TOKENS:
                    out.append(Problem(line, f"usage.{key}", f"must be at most 1e12 tokens, got {v!r}"))
                else:
                    usage[key] = int(v)
    for key, (bound, shown) in _NUMBER_BOUNDS.items():
        v = obj.get(key)
        if v is not None and (not _finite(v) or v < 0):
            out.append(Problem(line, key, f"must be a finite non-negative number or null, got {v!r}"))
        elif v is not None and v > bound:
            out.append(Problem(line, key, f"must be at most {shown}, got {v!r}"))
    att = obj.get("attempts")
    if att is not None and (not isinstance(att, int) or isinstance(att, bool) or not 0 <= att < INT_LIMIT):
        out.append(Problem(line, "attempts", f"must be a non-negative integer, got {att!r}"))
    return usage


def _check_cache_claim(obj: Mapping[str, Any], status: Any, line: int | None, out: list[Problem]) -> None:
    """``from_cache: true`` is a claim about provenance: a hit is an ok result that made no
    call, and it names the run and trace of the call that produced it."""
    fc = obj.get("from_cache")
    if fc is not None and not isinstance(fc, bool):
        out.append(Problem(line, "from_cache", "must be true or false"))
        return
    origin = obj.get("cache_origin")
    if origin is not None or fc:
        if not isinstance(origin, dict):
            out.append(Problem(line, "cache_origin", "a cache hit must name its origin: "
                                                     "{run_id, trace_id} of the call that produced it"))
        else:
            for key in ("run_id", "trace_id"):
                if not isinstance(origin.get(key), str) or not origin[key]:
                    out.append(Problem(line, f"cache_origin.{key}", "must be a non-empty string"))
    if fc:
        if status != "ok":
            out.append(Problem(line, "status", f"a cache hit is an ok result (errors are never cached), "
                                                f"got {status!r}"))
        if obj.get("attempts") not in (0, None):
            out.append(Problem(line, "attempts", f"a cache hit made no call: must be 0, got {obj.get('attempts')!r}"))


def check_line(obj: Any, line: int | None, out: list[Problem]) -> dict[str, Any] | None:
    """Validate one results line (a parsed JSON value); append problems to ``out``.

    Returns the line with every contract field present (defaults from
    :data:`RESULT_DEFAULTS`; unknown extra fields are kept), or None when invalid.
    A retrieved item may be an id string; it is read as ``{"id": ...}``.
    """
    n0 = len(out)
    if not isinstance(obj, dict):
        out.append(Problem(line, None, f"must be a JSON object, got {type(obj).__name__}"))
        return None
    cid = obj.get("case_id")
    if not isinstance(cid, str) or not cid.strip():
        out.append(Problem(line, "case_id", "missing or not a non-empty string"))
    status = obj.get("status", "ok")
    if status not in STATUSES:
        out.append(Problem(line, "status", f"must be one of {', '.join(STATUSES)}, got {status!r}"))
    answer = obj.get("answer")
    if answer is not None and not isinstance(answer, str):
        out.append(Problem(line, "answer", f"must be a string or null, got {type(answer).__name__}"))
    err = obj.get("error")
    if err is not None and not isinstance(err, str):
        out.append(Problem(line, "error", "must be a string or null"))
    for key in _ID_FIELDS:
        v = obj.get(key)
        if v is not None and not isinstance(v, str):
            out.append(Problem(line, key, "must be a string or null"))
    retrieved = _check_retrieved(obj.get("retrieved"), line, out)
    _check_lists(obj, line, out)
    usage = _check_numbers(obj, line, out)
    _check_cache_claim(obj, status, line, out)
    _check_truncation(obj, line, out)
    if SCORED_UNREDACTED in obj:
        _check_scored_unredacted(obj[SCORED_UNREDACTED], line, out)
    if len(out) > n0:
        return None
    res = dict(obj)
    for key, default in RESULT_DEFAULTS.items():
        v = res.get(key, _ABSENT)  # a field given keeps its place; one missing is added, in this order
        if v is _ABSENT or (v is None and default is not None):
            res[key] = list(default) if isinstance(default, list) else default
    res["retrieved"] = retrieved
    if "retrieved" not in obj:
        res.setdefault("retrieval_logged", False)
    if usage is not None:
        res["usage"] = usage
    return res


def _check_truncation(obj: Mapping[str, Any], line: int | None, out: list[Problem]) -> None:
    """``truncated`` is a bool; ``truncated_chars`` maps a field path to its original length."""
    flag, cut = obj.get("truncated"), obj.get("truncated_chars")
    if flag is not None and not isinstance(flag, bool):
        out.append(Problem(line, "truncated", "must be true or false"))
    if cut is None:
        return
    if not isinstance(cut, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in cut.items()
    ):
        out.append(Problem(line, "truncated_chars", "must map field paths to whole numbers >= 0"))
    elif flag is not True:
        out.append(Problem(line, "truncated_chars", "given without truncated: true"))


def _check_scored_unredacted(rec: Any, line: int | None, out: list[Problem]) -> None:
    """``scored_unredacted`` maps some of :data:`RESTORABLE` to ``[value, reason]``: a number in
    [0, 1] and ``""``, or null and the reason it was unmeasured."""
    if not isinstance(rec, dict):
        out.append(Problem(line, SCORED_UNREDACTED, "must be an object"))
        return
    for name, got in rec.items():
        where = f"{SCORED_UNREDACTED}.{name}"
        if name not in RESTORABLE:
            out.append(Problem(line, where, f"not a metric it records (known: {', '.join(RESTORABLE)})"))
        elif not (isinstance(got, list) and len(got) == 2 and isinstance(got[1], str)
                  and ((got[0] is None and got[1]) or (_fraction(got[0]) and not got[1]))):
            out.append(Problem(line, where, 'must be [a number from 0 to 1, ""] or [null, "the reason"]'))


def _fraction(v: Any) -> bool:
    return type(v) in (int, float) and 0.0 <= v <= 1.0


def problems_text(problems: list[Problem], *, shown: int = 3) -> str:
    """The problems of one line as one short text (for an error result): the first ``shown`` of
    them, and how many more (a list of fifty bad items is one problem told fifty times)."""
    text = "; ".join(f"result field {p.field!r}: {p.reason}" if p.field else p.reason for p in problems[:shown])
    return text + (f" (and {len(problems) - shown} more)" if len(problems) > shown else "")


def cache_entry(data: Any, key: str) -> dict[str, Any] | None:
    """A cache entry, validated: a results line of an ok, non-cached call under ``key`` that
    names its origin; None (a miss) for anything else."""
    if not isinstance(data, dict) or data.get("idempotency_key") != key:
        return None
    if data.get("status") != "ok" or data.get("from_cache") is not False or "cache_origin" not in data:
        return None
    problems: list[Problem] = []
    line = check_line(data, None, problems)
    if line is None or not isinstance(line.get("answer"), str):
        return None
    return line


# --------------------------------------------------------------------------- lines the runner writes

#: Result fields the runner sets itself (a pipeline's values for them are ignored).
RUNNER_FIELDS = (
    "case_id",
    "status",
    "attempts",
    "error",
    "error_type",
    "trace_id",
    "from_cache",
    "cache_origin",
    "answered_by",
    "idempotency_key",
    "truncated",
    "truncated_chars",
    "scored_unredacted",
)

#: The field of a results line where the runner records what the metrics reading the answer and
#: the case's texts measured before the line and the dataset snapshot were redacted (labkit.metrics.restore).
SCORED_UNREDACTED = "scored_unredacted"
#: The metrics a placeholder can hide text from (their values are what the field records).
RESTORABLE = ("must_include_coverage", "must_not_include_violation", "exact_match", "token_f1", "rouge_l")


def pipeline_fields(out: Any) -> dict[str, Any]:
    """What a pipeline returned, as plain JSON values: a mapping with a string ``answer``."""
    if hasattr(out, "__await__"):
        raise ResultError("pipeline returned an awaitable where a mapping was expected")
    if not isinstance(out, Mapping):
        raise ResultError(f"pipeline returned {type(out).__name__}, not a mapping")
    data = to_json_value(out)
    ans = data.get("answer")
    if not isinstance(ans, str):
        raise ResultError(f"result field 'answer' must be a string, got {type(ans).__name__}")
    return data


def make_line(
    case_id: str,
    status: str,
    data: Mapping[str, Any] | None,
    *,
    latency_ms: float | None,
    attempts: int,
    error: str | None,
    error_type: str | None,
    trace_id: str,
    answered_by: str | None,
    key: str,
) -> dict[str, Any]:
    """A results line from a pipeline's fields (``data``, None for a failure) and the runner's.

    A pipeline's own ``latency_ms`` wins over the measured wall time (the simulated
    pipeline reports a modelled latency); :func:`checked` then validates it.
    """
    d = data or {}
    lat = d.get("latency_ms")
    if lat is None and latency_ms is not None:
        lat = round(latency_ms, 3)
    elif isinstance(lat, int) and not isinstance(lat, bool):
        lat = float(lat)
    res: dict[str, Any] = {
        "case_id": case_id,
        "status": status,
        "answer": d.get("answer"),
        "retrieved": d.get("retrieved") if d.get("retrieved") is not None else [],
        "citations": d.get("citations") if d.get("citations") is not None else [],
        "tool_calls": d.get("tool_calls") if d.get("tool_calls") is not None else [],
        "usage": d.get("usage"),
        "cost_usd": d.get("cost_usd"),
        "latency_ms": lat,
        "attempts": attempts,
        "error": error,
        "error_type": error_type,
        "trace_id": trace_id,
        "from_cache": False,
        "answered_by": answered_by,
        "idempotency_key": key,
    }
    for k, v in d.items():
        if k not in res and k not in RUNNER_FIELDS:
            res[k] = v
    if data is not None and "retrieved" not in data:
        res["retrieval_logged"] = False  # the pipeline reports no retrieval: unmeasured, not 0
    return res


def checked(res: dict[str, Any]) -> dict[str, Any]:
    """``res`` when it is a valid results line, else a ResultError listing what is wrong."""
    problems: list[Problem] = []
    if check_line(res, None, problems) is None:
        raise ResultError(problems_text(problems))
    return res
