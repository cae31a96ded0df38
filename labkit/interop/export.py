"""Exporters: a labkit dataset (and a run's answers) as a Ragas or DeepEval file, so a team
can score the same cases in both tools and cross-check. Field by field: docs/interop.md.

Gold chunk ids become their texts through the corpus (``reference_contexts`` /
``context``); retrieved items are written as their ``text`` (or the chunk's, from the
corpus). Everything written passes through the redaction first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labkit.cases import EvalCase
from labkit.errors import ConfigError
from labkit.io import atomic_write_text

__all__ = ["export", "to_deepeval", "to_ragas"]


def _texts(ids: Any, corpus: Any) -> list[str] | None:
    if corpus is None:
        return None
    out = []
    for cid in ids:
        ch = corpus.chunk(cid)
        if ch is not None:
            out.append(ch.text)
    return out


def _retrieved(res: dict[str, Any] | None, corpus: Any) -> list[str] | None:
    if res is None or res.get("retrieval_logged") is False:
        return None
    out = []
    for it in res.get("retrieved") or []:
        text = it.get("text") if isinstance(it, dict) else None
        if not isinstance(text, str) and corpus is not None and isinstance(it, dict):
            ch = corpus.chunk(str(it.get("id")))
            text = ch.text if ch is not None else None
        if isinstance(text, str):
            out.append(text)
    return out


def to_ragas(case: EvalCase, res: dict[str, Any] | None, corpus: Any) -> dict[str, Any]:
    """A Ragas ``SingleTurnSample`` record."""
    gold = case.metadata.get("reference_contexts") or _texts(case.expected_chunks, corpus)
    rec: dict[str, Any] = {"user_input": case.question, "retrieved_contexts": _retrieved(res, corpus),
                           "reference_contexts": gold or None,
                           "response": res.get("answer") if res and res.get("status") == "ok" else None,
                           "reference": case.reference_answer}
    if case.expected_tools:
        rec["reference_tool_calls"] = [{"name": t["name"], "args": dict(t.get("args") or {})}
                                       for t in case.expected_tools]
    return rec


def to_deepeval(case: EvalCase, res: dict[str, Any] | None, corpus: Any) -> dict[str, Any]:
    """A DeepEval golden / test case record (``save_as("json")`` field names)."""
    gold = case.metadata.get("reference_contexts") or _texts(case.expected_chunks, corpus)
    rec: dict[str, Any] = {"name": case.id, "input": case.question,
                           "actual_output": res.get("answer") if res and res.get("status") == "ok" else None,
                           "expected_output": case.reference_answer, "context": gold or None,
                           "retrieval_context": _retrieved(res, corpus),
                           "additional_metadata": {"tags": dict(case.tags)} if case.tags else None}
    if case.expected_tools:
        rec["expected_tools"] = [{"name": t["name"], "input_parameters": dict(t.get("args") or {})}
                                 for t in case.expected_tools]
    if res is not None:
        if res.get("tool_calls"):
            rec["tools_called"] = [{"name": t.get("name"), "input_parameters": t.get("args") or {},
                                    "output": t.get("output")} for t in res["tool_calls"]]
        if res.get("cost_usd") is not None:
            rec["token_cost"] = res["cost_usd"]
        if res.get("latency_ms") is not None:
            rec["completion_time"] = res["latency_ms"] / 1000.0
    return rec


def export(fmt: str, dataset: str | os.PathLike[str], out: str | os.PathLike[str], *,
           run_dir: str | os.PathLike[str] | None = None, corpus: Any = None,
           unmatched: dict[str, int] | None = None) -> int:
    """Write ``dataset`` (with the answers of ``run_dir``) as ``fmt``; returns the number of records.

    Ragas: JSONL (``.jsonl``) or a JSON array; DeepEval: a JSON array. ``unmatched``, when
    given, receives ``cases_without_result`` and ``results_without_case`` (a run of another
    dataset shows here, not as a silent file of references only)."""
    from labkit.cases import load_cases
    from labkit.corpus import Corpus
    from labkit.runs import RunDir, record_redactor

    if fmt not in ("ragas", "deepeval"):
        raise ConfigError(f"unknown export format {fmt!r}", field="format", known=["deepeval", "ragas"])
    if Path(out).is_dir():
        raise ConfigError("is a folder: give the file to write (.jsonl or .json)", path=str(out), field="--out")
    ds = load_cases(dataset)
    corp = Corpus.load(corpus) if isinstance(corpus, (str, os.PathLike)) else corpus
    rd = RunDir(run_dir) if run_dir is not None else None
    results = {r["case_id"]: r for r in rd.results()} if rd is not None else {}
    if unmatched is not None and run_dir is not None:
        ids = {c.id for c in ds}
        unmatched["cases_without_result"] = sum(1 for c in ds if c.id not in results)
        unmatched["results_without_case"] = sum(1 for cid in results if cid not in ids)
    conv = to_ragas if fmt == "ragas" else to_deepeval
    red = record_redactor(rd.redaction if rd is not None else None)  # (and the run's own extra patterns)
    recs = [red.redact(conv(c, results.get(c.id), corp)) for c in ds]
    if fmt == "ragas" and Path(out).suffix.lower() == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    else:
        text = json.dumps(recs, indent=2, ensure_ascii=False) + "\n"
    atomic_write_text(out, text)
    return len(recs)
