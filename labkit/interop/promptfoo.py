"""promptfoo: test files (YAML ``tests:`` with ``vars`` and ``assert``, or CSV: one column per
variable, assertions in ``__expected`` columns) and eval output JSON
(``promptfoo eval --output results.json``: ``results.results[]``). Field by field: docs/interop.md.

The question is the test variable named by ``question_var`` (default: the first of
``question``, ``query``, ``input``, ``prompt`` present, or the only variable).
"""

from __future__ import annotations

import json
import os
from typing import Any

from labkit.errors import ConfigError, DatasetError, Problem
from labkit.interop.core import FieldLog, Record, read_document, read_text
from labkit.interop.values import number, token_count, usage

__all__ = ["read"]

QUESTION_VARS = ("question", "query", "input", "prompt")
#: assertion types with a labkit field: contains-style phrases and the reference answer
_INCLUDE = {"contains", "icontains", "contains-all", "icontains-all"}
_EXCLUDE = {"not-contains", "not-icontains", "not-contains-all", "not-icontains-all", "not-contains-any",
            "not-icontains-any"}
_REFERENCE = ("equals", "similar", "factuality")


def _question(vars_: dict[str, Any], line: int | None, qvar: str | None, problems: list[Problem]) -> tuple[Any, str]:
    name = qvar or next((v for v in QUESTION_VARS if v in vars_), None)
    if name is None and len(vars_) == 1:
        name = next(iter(vars_))
    if name is None or name not in vars_:
        problems.append(Problem(line, f"vars.{qvar}" if qvar else "vars",
                                "no question variable (give --question-var; looked for "
                                f"{', '.join(QUESTION_VARS)})"))
        return None, ""
    q = vars_[name]
    if not isinstance(q, str):
        problems.append(Problem(line, f"vars.{name}", "the question must be a string"))
    return q, name


def _asserts(asserts: Any, line: int | None, rec: Record, log: FieldLog, problems: list[Problem]) -> None:
    if asserts is None:
        return
    if not isinstance(asserts, list):
        problems.append(Problem(line, "assert", "must be a list of {type, value} objects"))
        return
    include: list[str] = []
    exclude: list[str] = []
    kept = []
    for i, a in enumerate(asserts):
        if not isinstance(a, dict) or not isinstance(a.get("type"), str):
            problems.append(Problem(getattr(a, "line", line), f"assert[{i}]", "must be an object with a type"))
            continue
        kind, value = a["type"], a.get("value")
        phrases = [value] if isinstance(value, str) else value if isinstance(value, list) else None
        if kind in _INCLUDE | _EXCLUDE and phrases and all(isinstance(p, str) for p in phrases):
            (include if kind in _INCLUDE else exclude).extend(phrases)
            log.map(f"assert.{kind}", "must_include" if kind in _INCLUDE else "must_not_include")
        elif kind in _REFERENCE and isinstance(value, str) and "reference_answer" not in rec.case:
            rec.case["reference_answer"] = value
            log.map(f"assert.{kind}", "reference_answer")
        else:
            kept.append(dict(a))
            log.keep(f"assert.{kind}")
    if include:
        rec.case["must_include"] = include
    if exclude:
        rec.case["must_not_include"] = exclude
    if kept:
        rec.case.setdefault("metadata", {})["promptfoo_assert"] = kept


def _test(test: Any, line: int | None, qvar: str | None, log: FieldLog, problems: list[Problem]) -> Record | None:
    if not isinstance(test, dict):
        problems.append(Problem(line, None, "a test must be a mapping with vars"))
        return None
    vars_ = test.get("vars") or {}
    if not isinstance(vars_, dict):
        problems.append(Problem(line, "vars", "must be a mapping of variables"))
        return None
    q, name = _question(vars_, line, qvar, problems)
    rec = Record(line=line, question=q)
    log.map(f"vars.{name}" if name else "vars", "question")
    meta: dict[str, Any] = {}
    if test.get("description"):
        meta["description"] = test["description"]
        log.keep("description")
    if isinstance(test.get("metadata"), dict):
        meta.update(test["metadata"])
        log.keep("metadata")
    others = {k: v for k, v in vars_.items() if k != name}
    if others:
        meta["vars"] = others
        for k in others:
            log.keep(f"vars.{k}")
    rec.case["metadata"] = meta
    _asserts(test.get("assert"), line, rec, log, problems)
    for key in sorted(set(test) - {"vars", "assert", "description", "metadata"}):
        log.drop(key, "a test option with no labkit field (provider, options, threshold ...)")
    return rec


def _yaml_tests(path: str | os.PathLike[str], qvar: str | None) -> tuple[list[Record], FieldLog]:
    import yaml

    from labkit.config import read_yaml_text

    data, text = read_yaml_text(path)
    tests = data.get("tests") if isinstance(data, dict) else data
    if not isinstance(tests, list):
        raise DatasetError(str(path), [Problem(1, "tests", "must be a list of tests (or a file holding tests:)")])
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    seq: Any = root
    if isinstance(data, dict) and root is not None:
        seq = next((v for k, v in root.value if getattr(k, "value", None) == "tests"), None)
    lines = [n.start_mark.line + 1 for n in seq.value] if seq is not None else [None] * len(tests)
    log = FieldLog()
    problems: list[Problem] = []
    records = [_test(t, ln, qvar, log, problems) for t, ln in zip(tests, lines, strict=True)]
    if problems:
        raise DatasetError(str(path), problems)
    return [r for r in records if r is not None], log


#: what a ``__expected`` cell of a promptfoo tests CSV may start with (``type: value``); a bare
#: value is an ``equals`` assertion, ``grade:`` an llm-rubric and ``fn:`` a javascript one
_CSV_PREFIXES = {"grade": "llm-rubric", "fn": "javascript", "eval": "javascript", "python": "python",
                 "similar": "similar", "regex": "regex"}


def _csv_assert(cell: str) -> dict[str, Any]:
    head, sep, rest = cell.partition(":")
    kind = head.strip().lower()
    if sep and (kind in _INCLUDE | _EXCLUDE | {"equals", "factuality", "llm-rubric", "javascript", "starts-with",
                                                "contains-any", "icontains-any", "is-json", "contains-json"}):
        value: Any = rest.strip()
        if kind.endswith(("-all", "-any")):
            value = [v.strip() for v in rest.split(",") if v.strip()]
        return {"type": kind, "value": value}
    if sep and kind in _CSV_PREFIXES:
        return {"type": _CSV_PREFIXES[kind], "value": rest.strip()}
    return {"type": "equals", "value": cell}


def _csv_tests(path: str | os.PathLike[str], qvar: str | None) -> tuple[list[Record], FieldLog]:
    from labkit.interop.core import read_rows

    tests = []
    for n, row in read_rows(path):
        vars_ = {k: v for k, v in row.items() if not k.startswith("__")}
        asserts = [_csv_assert(v) for k, v in row.items() if k.startswith("__expected") and v.strip()]
        test: dict[str, Any] = {"vars": vars_, "assert": asserts}
        if row.get("__description"):
            test["description"] = row["__description"]
        test.update({k: v for k, v in row.items() if k.startswith("__") and k not in ("__description",)
                     and not k.startswith("__expected") and v})
        tests.append((n, test))
    log = FieldLog()
    problems: list[Problem] = []
    records = [_test(t, n, qvar, log, problems) for n, t in tests]
    if problems:
        raise DatasetError(str(path), problems)
    return [r for r in records if r is not None], log


def _output(res: dict[str, Any], rec: Record, log: FieldLog, problems: list[Problem]) -> None:
    line = getattr(res, "line", rec.line)
    resp: dict[str, Any] = res["response"] if isinstance(res.get("response"), dict) else {}
    out = resp.get("output")
    error = res.get("error") or resp.get("error")
    if out is None and not error:
        log.drop("response.output", "no output in the result and no error: a result without an answer is no result")
        return
    answer = out if isinstance(out, str) or out is None else json.dumps(out, ensure_ascii=False)
    counts = resp.get("tokenUsage") or res.get("tokenUsage") or {}
    cached = bool(resp.get("cached"))
    latency = number(res.get("latencyMs"), line, "latencyMs", problems)
    if cached and latency is not None:
        log.drop("latencyMs", "a cached response: its latency is not the call's")
        latency = None
    elif latency is not None:
        log.map("latencyMs", "results.latency_ms")
    cost = number(res.get("cost", resp.get("cost")), line, "cost", problems)
    if cost is not None:
        log.map("cost", "results.cost_usd")
    rec.result = {"status": "error" if error else "ok", "answer": None if error else answer,
                  "error": str(error) if error else None, "latency_ms": latency, "cost_usd": cost}
    log.map("response.output", "results.answer")
    tokens = {k: token_count(counts.get(k), line, f"tokenUsage.{k}", problems) if isinstance(counts, dict) else None
              for k in ("prompt", "completion")}
    if (used := usage(tokens["prompt"], tokens["completion"])) is not None:
        rec.result["usage"] = used
        log.map("response.tokenUsage", "results.usage")
    grading = res.get("gradingResult")
    if isinstance(grading, dict):
        rec.result["peer_grading"] = {"tool": "promptfoo", "pass": grading.get("pass"), "score": grading.get("score")}
        log.map("gradingResult", "results.peer_grading (not scored)")
    provider = res.get("provider")
    pid = provider.get("id") if isinstance(provider, dict) else provider
    if pid:
        rec.result["model"] = str(pid)


def _eval_output(path: str | os.PathLike[str], qvar: str | None, provider: str | None
                 ) -> tuple[list[Record], FieldLog]:
    doc = read_document(path)
    inner = doc.get("results") if isinstance(doc, dict) else None
    rows = inner.get("results") if isinstance(inner, dict) else None
    if not isinstance(rows, list):
        raise DatasetError(str(path), [Problem(getattr(doc, "line", 1), "results.results",
                                               "not a promptfoo eval output (version 3 or later: results.results[])")])
    def pid(r: Any) -> str:
        p = r.get("provider") if isinstance(r, dict) else None
        return str(p.get("id") if isinstance(p, dict) else p)
    pids = sorted({pid(r) for r in rows if isinstance(r, dict)})
    if provider is None and len(pids) > 1:
        raise ConfigError("the eval output holds several providers: choose one with --provider", path=str(path),
                          field="provider", known=pids)
    if provider is not None and provider not in pids:
        raise ConfigError(f"no results for provider {provider!r}", path=str(path), field="provider", known=pids)
    log = FieldLog()
    problems: list[Problem] = []
    records = []
    for r in rows:
        line = getattr(r, "line", None)
        if not isinstance(r, dict):
            problems.append(Problem(line, None, "a result must be an object"))
            continue
        if provider is not None and pid(r) != provider:
            continue
        test = r.get("testCase") if isinstance(r.get("testCase"), dict) else {"vars": r.get("vars") or {}}
        rec = _test(test, line, qvar, log, problems)
        if rec is not None:
            _output(r, rec, log, problems)
            records.append(rec)
    if problems:
        raise DatasetError(str(path), problems)
    return records, log


def read(path: str | os.PathLike[str], *, question_var: str | None = None, provider: str | None = None,
         **_: Any) -> tuple[list[Record], FieldLog]:
    """Records of a promptfoo tests file (.yaml/.yml, or .csv with ``__expected`` columns) or eval
    output (.json)."""
    if str(path).lower().endswith((".yaml", ".yml")):
        return _yaml_tests(path, question_var)
    if str(path).lower().endswith(".csv"):
        return _csv_tests(path, question_var)
    read_text(path)  # a missing or non-UTF-8 file: the one error
    return _eval_output(path, question_var, provider)
