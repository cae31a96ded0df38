"""OpenTelemetry export of trace records (optional extra ``otel``).

Each trace record becomes one OpenTelemetry trace (its trace id kept when it
is 32 hex digits, else derived from it by sha256):

- a root span ``invoke_workflow <pipeline>`` covering the case;
- a ``retrieval`` child span (``gen_ai.operation.name = retrieval``);
- an ``execute_tool <name>`` child span per tool call;
- a ``chat <model>`` child span (the generation) carrying the token usage and,
  as span events named ``gen_ai.evaluation.result``, one evaluation per score
  (``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``,
  ``gen_ai.evaluation.score.label``, ``gen_ai.evaluation.explanation``).

Attribute names follow the OpenTelemetry GenAI semantic conventions
(development status) at :data:`SEMCONV_VERSION`, as exposed by the constants of
``opentelemetry-semantic-conventions`` :data:`SEMCONV_PACKAGE` (the tests check
every ``gen_ai.*`` name used against them). ``prompt_version`` has no gen_ai key
and goes out as ``labkit.prompt.version``; other labkit fields use the
``labkit.`` prefix. Content (question, answer, tool args/outputs) is exported
only with ``capture_content=True`` and is whatever the (redacted) record holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from labkit.deadline import Deadline
from labkit.errors import DatasetError, ExportFailed, MissingDependencyError, Problem
from labkit.openai_compat import scrub
from labkit.trace import openinference as oi

SEMCONV_VERSION = "1.38.0"
SEMCONV_PACKAGE = "0.66b2"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _require() -> None:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("opentelemetry-sdk", "otel", "OpenTelemetry export") from None


def otel_trace_id(trace_id: str) -> int:
    """The 128-bit OpenTelemetry trace id of a labkit trace id."""
    t = trace_id.lower()
    if not _HEX32.match(t) or int(t, 16) == 0:
        t = hashlib.sha256(trace_id.encode()).hexdigest()[:32]
    return int(t, 16)


def otel_span_id(span_id: str | None, seed: str) -> int:
    s = (span_id or "").lower()
    if not _HEX16.match(s) or int(s, 16) == 0:
        s = hashlib.sha256(seed.encode()).hexdigest()[:16]
    return int(s, 16)


def _run_scoped(rec: Mapping[str, Any]) -> tuple[int, Callable[[str | None, str], int]]:
    """The OTel trace id of a record and its span-id function. A record that carries a
    ``run_uuid`` (every record :func:`export_runs` sends) gets ids hashed from that uuid and
    the labkit ids: the same run always exports the same ids, two runs never share one."""
    tid = str(rec.get("trace_id"))
    key = rec.get("run_uuid")
    if not key:
        return otel_trace_id(tid), otel_span_id
    trace = int(hashlib.sha256(f"trace:{key}:{tid}".encode()).hexdigest()[:32], 16) or 1

    def span(span_id: str | None, seed: str) -> int:
        return int(hashlib.sha256(f"span:{key}:{tid}:{span_id or seed}".encode()).hexdigest()[:16], 16) or 1

    return trace, span


def _ns(t: Any, fallback: float) -> int:
    try:
        return int(float(t) * 1e9)
    except (TypeError, ValueError):
        return int(fallback * 1e9)


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """OTel attribute values: str/bool/int/float or homogeneous lists of them; drop None."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, str | bool | int | float):
            out[k] = v
        elif isinstance(v, list | tuple):
            vals = [x for x in v if x is not None]
            if vals and all(isinstance(x, str) for x in vals):
                out[k] = list(vals)
            elif vals and all(isinstance(x, int | float) and not isinstance(x, bool) for x in vals):
                out[k] = [float(x) for x in vals]
            elif vals:
                out[k] = json.dumps(vals, default=str)
        else:
            out[k] = json.dumps(v, default=str)
    return out


class _FixedIds:
    """An IdGenerator handing out the ids labkit chose (then random ones)."""

    def __init__(self) -> None:
        import random

        self._rand = random.Random()
        self.next_trace: int | None = None
        self.next_span: int | None = None

    def generate_trace_id(self) -> int:
        if self.next_trace is not None:
            t, self.next_trace = self.next_trace, None
            return t
        return self._rand.getrandbits(128)

    def is_trace_id_random(self) -> bool:
        return False  # labkit ids are derived from run/case, not random

    def generate_span_id(self) -> int:
        if self.next_span is not None:
            s, self.next_span = self.next_span, None
            return s
        return self._rand.getrandbits(64)


def _span_attrs(rec: Mapping[str, Any], span: Mapping[str, Any], capture_content: bool) -> dict[str, Any]:
    op = span.get("operation")
    a = dict(span.get("attributes") or {})
    attrs: dict[str, Any] = {"gen_ai.operation.name": op, "labkit.span.timing": span.get("timing")}
    if op == "retrieval":
        docs = a.get("documents") or []
        scores = a.get("scores") or []
        attrs["gen_ai.data_source.id"] = rec.get("pipeline")
        attrs["gen_ai.retrieval.documents"] = json.dumps(
            [{"id": d, "score": s} for d, s in zip(docs, scores, strict=False)])
        attrs["labkit.retrieval.document_ids"] = [str(d) for d in docs]
        if capture_content:
            attrs["gen_ai.retrieval.query.text"] = a.get("query")
        attrs |= oi.retrieval_attrs(rec, docs, scores, a.get("query"), capture_content)
    elif op == "execute_tool":
        i = int(a.get("index", 0))
        tcs = rec.get("tool_calls") or []
        tc = tcs[i] if i < len(tcs) and isinstance(tcs[i], Mapping) else {}
        attrs["gen_ai.tool.name"] = tc.get("name") or a.get("tool_name")
        attrs["gen_ai.tool.type"] = "function"
        attrs["gen_ai.tool.call.id"] = f"{rec.get('trace_id')}:{i}"
        if tc.get("status") not in (None, "ok"):
            attrs["error.type"] = str(tc.get("status"))
        if capture_content:
            attrs["gen_ai.tool.call.arguments"] = json.dumps(tc.get("args") or {}, default=str)
            if "output" in tc:
                attrs["gen_ai.tool.call.result"] = json.dumps(tc.get("output"), default=str)
        attrs |= oi.tool_attrs(tc, attrs["gen_ai.tool.name"], capture_content)
    elif op == "chat":
        n_in, n_out = oi.token_counts(rec)
        attrs.update({
            "gen_ai.provider.name": rec.get("provider"),
            "gen_ai.request.model": rec.get("model"),
            "gen_ai.response.model": rec.get("model"),
            "gen_ai.output.type": "text",
            "gen_ai.usage.input_tokens": n_in,
            "gen_ai.usage.output_tokens": n_out,
            "gen_ai.response.finish_reasons": [oi.finish_reason(rec)],
            "labkit.prompt.version": rec.get("prompt_version"),
            "labkit.cost_usd": rec.get("cost_usd"),
        })
        if rec.get("error_type"):
            attrs["error.type"] = rec.get("error_type")
        if capture_content:
            attrs |= _messages(rec)
        attrs |= oi.llm_attrs(rec, capture_content)
    else:
        attrs["openinference.span.kind"] = oi.span_kind(op)
    return _clean(attrs)


def _messages(rec: Mapping[str, Any]) -> dict[str, str]:
    """gen_ai.input.messages / gen_ai.output.messages (the output with its finish_reason)."""
    def parts(text: Any) -> list[dict[str, Any]]:
        return [] if text is None else [{"type": "text", "content": text}]

    return {"gen_ai.input.messages": json.dumps([{"role": "user", "parts": parts(rec.get("input"))}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": parts(rec.get("output")),
                                                   "finish_reason": oi.finish_reason(rec)}])}


def _root_attrs(rec: Mapping[str, Any], capture_content: bool) -> dict[str, Any]:
    n_in, n_out = oi.token_counts(rec)
    g = rec.get("guardrails") or {}
    return _clean(oi.root_attrs(rec, capture_content) | {
        "gen_ai.operation.name": rec.get("operation") or "invoke_workflow",
        "gen_ai.provider.name": rec.get("provider"),
        "gen_ai.request.model": rec.get("model"),
        "gen_ai.usage.input_tokens": n_in,
        "gen_ai.usage.output_tokens": n_out,
        "gen_ai.conversation.id": rec.get("session_id"),
        "error.type": rec.get("error_type"),
        "labkit.prompt.version": rec.get("prompt_version"),
        "labkit.run_id": rec.get("run_id"),
        "labkit.run_uuid": rec.get("run_uuid"),
        "labkit.case_id": rec.get("case_id"),
        "labkit.trace_id": rec.get("trace_id"),
        "labkit.attempt": rec.get("attempt"),
        "labkit.pipeline": rec.get("pipeline"),
        "labkit.config_hash": rec.get("config_hash"),
        "labkit.status": rec.get("status"),
        "labkit.latency_ms": rec.get("latency_ms"),
        "labkit.cost_usd": rec.get("cost_usd"),
        "labkit.from_cache": rec.get("from_cache"),
        "labkit.retrieved_chunks": list(rec.get("retrieved_chunks") or []),
        "labkit.guardrails.injection_flag": bool(g.get("injection_flag", False)),
        "labkit.guardrails.pii_redacted": bool(g.get("pii_redacted", False)),
        "labkit.guardrails.violations": list(g.get("violations") or []),
        "labkit.feedback.rating": rec.get("feedback_rating"),
        "deployment.environment.name": rec.get("environment"),
        "service.version": rec.get("release"),
    })


def _emit(tracer: Any, ids: _FixedIds, rec: Mapping[str, Any], capture_content: bool,
          score_labels: Mapping[str, float]) -> int:
    from opentelemetry import trace as ot
    from opentelemetry.trace import Status, StatusCode

    tid = str(rec.get("trace_id"))
    trace_id, span_id_of = _run_scoped(rec)
    t0 = rec.get("ts_start")
    t1 = rec.get("ts_end")
    if t0 is None:
        t0 = 0.0
    if t1 is None:
        t1 = float(t0) + float(rec.get("latency_ms") or 0) / 1000.0
    start, end = _ns(t0, 0.0), _ns(t1, float(t0))
    ids.next_trace = trace_id
    ids.next_span = span_id_of(rec.get("span_id"), f"{tid}:root")
    name = f"{rec.get('operation') or 'invoke_workflow'} {rec.get('pipeline') or 'pipeline'}"
    root = tracer.start_span(name, kind=ot.SpanKind.INTERNAL, attributes=_root_attrs(rec, capture_content),
                             start_time=start)
    status = str(rec.get("status") or "ok")
    if status not in ("ok", "pass"):
        root.set_status(Status(StatusCode.ERROR, f"{status}: {rec.get('error_type') or ''}".strip(": ")))
    n = 1
    ctx = ot.set_span_in_context(root)
    spans = list(rec.get("spans") or [])
    if not spans:  # a flat record: one generation span from what it has
        spans = [{"span_id": None, "name": f"chat {rec.get('model')}", "operation": "chat",
                  "ts_start": t0, "ts_end": t1, "timing": "inherited", "attributes": {}}]
        if rec.get("retrieved_chunks"):
            spans.insert(0, {"span_id": None, "name": "retrieval", "operation": "retrieval", "ts_start": t0,
                             "ts_end": t1, "timing": "inherited",
                             "attributes": {"documents": rec.get("retrieved_chunks"), "scores": []}})
    for j, sp in enumerate(spans):
        ids.next_span = span_id_of(sp.get("span_id"), f"{tid}:{j}")
        kind = ot.SpanKind.CLIENT if sp.get("operation") in ("chat", "retrieval") else ot.SpanKind.INTERNAL
        child = tracer.start_span(str(sp.get("name") or sp.get("operation")), context=ctx, kind=kind,
                                  attributes=_span_attrs(rec, sp, capture_content),
                                  start_time=_ns(sp.get("ts_start"), float(t0)))
        st = sp.get("status")
        if st not in (None, "ok"):
            child.set_status(Status(StatusCode.ERROR, str(st)))
        if sp.get("operation") == "chat":
            for metric, value in sorted((rec.get("scores") or {}).items()):
                if value is None:
                    continue
                ev: dict[str, Any] = {"gen_ai.evaluation.name": metric,
                                      "gen_ai.evaluation.score.value": float(value),
                                      "gen_ai.operation.name": "chat"}
                if metric in score_labels:
                    ev["gen_ai.evaluation.score.label"] = "pass" if float(value) >= score_labels[metric] else "fail"
                reason = (rec.get("score_reasons") or {}).get(metric)
                if reason:
                    ev["gen_ai.evaluation.explanation"] = str(reason)
                child.add_event("gen_ai.evaluation.result", attributes=ev, timestamp=_ns(sp.get("ts_end"), float(t1)))
        child.end(end_time=_ns(sp.get("ts_end"), float(t1)))
        n += 1
    root.end(end_time=end)
    return n


DEFAULT_SCORE_LABELS: dict[str, float] = {"faithfulness": 0.85, "retrieval_hit_rate": 1.0,
                                          "must_include_coverage": 1.0, "task_success_rate": 1.0}


def export_traces(
    records: Iterable[Mapping[str, Any]],
    *,
    endpoint: str | None = None,
    exporter: Any = None,
    service_name: str = "labkit",
    resource_attributes: Mapping[str, Any] | None = None,
    capture_content: bool = False,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    score_labels: Mapping[str, float] | None = None,
) -> int:
    """Export trace records as OpenTelemetry traces; returns the number of spans delivered.

    Raises :class:`ExportFailed` (with ``delivered``, ``failed`` and ``reason``) when any span
    was not delivered: the endpoint refused the connection, answered an error status, or
    the export did not end within ``timeout_s``, the total deadline of the whole export
    (every batch, retries of transient errors included; :mod:`labkit.deadline`: an endpoint
    that drips its answer holds it no longer). The endpoint's URL is named with its
    credentials masked (``http://[TOKEN]@host``).

    Give either ``endpoint`` (an OTLP/HTTP collector base URL such as
    ``http://127.0.0.1:4318``; ``/v1/traces`` is appended unless present) or an
    SDK span ``exporter`` (e.g. ``InMemorySpanExporter``). Records may carry
    ``scores`` (see :func:`labkit.trace.joined.records_with_scores`).
    ``score_labels`` maps a metric to the threshold for the pass/fail label.
    """
    _require()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if (endpoint is None) == (exporter is None):
        raise ValueError("give exactly one of endpoint= or exporter=")
    target, session = "the exporter", None
    if endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        exporter = OTLPSpanExporter(endpoint=url, headers=dict(headers or {}), timeout=timeout_s,
                                    session=(session := _status_session()))
        target = scrub(url)
    ids = _FixedIds()
    res = Resource.create({"service.name": service_name, "telemetry.sdk.name": "opentelemetry",
                           **dict(resource_attributes or {})})
    provider = TracerProvider(resource=res, id_generator=ids)  # type: ignore[arg-type]
    collected = InMemorySpanExporter()  # spans are built first, then sent in batches we count
    provider.add_span_processor(SimpleSpanProcessor(collected))
    from labkit import __version__ as labkit_version

    tracer = provider.get_tracer("labkit", labkit_version, schema_url=SCHEMA_URL)
    labels = dict(DEFAULT_SCORE_LABELS if score_labels is None else score_labels)
    try:
        for rec in records:
            _emit(tracer, ids, rec, capture_content, labels)
    finally:
        provider.shutdown()
    spans = list(collected.get_finished_spans())
    try:
        deadline = Deadline(timeout_s) if endpoint is not None else None  # (from the first batch sent)
        delivered, reason = _send(exporter, spans, getattr(session, "labkit_status", None), deadline)
    finally:
        exporter.shutdown()
    if delivered < len(spans):
        raise ExportFailed(target, delivered=delivered, total=len(spans), reason=scrub(reason))
    return delivered


def _status_session() -> Any:
    """A requests session remembering the last HTTP status the endpoint answered (the OTLP
    exporter reports a failed batch without it)."""
    import requests

    session = requests.Session()
    seen: list[str] = []

    def hook(resp: Any, *args: Any, **kwargs: Any) -> None:
        if resp.status_code >= 400:
            seen.append(f"the endpoint answered HTTP {resp.status_code} {resp.reason or ''}".strip())

    session.hooks["response"].append(hook)
    session.labkit_status = lambda: seen[-1] if seen else None  # type: ignore[attr-defined]
    return session


_BATCH = 512
_OTLP_LOGGERS = ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "opentelemetry.exporter.otlp.common.http")


def _send(exporter: Any, spans: Sequence[Any], status: Callable[[], str | None] | None = None,
          deadline: Deadline | None = None) -> tuple[int, str]:
    """(spans delivered, why the rest were not) sending ``spans`` in batches; the first failed
    batch ends the export (an endpoint that refused one batch is not tried with the next).
    With a ``deadline`` the export ends by it, whatever the endpoint does: the batches are sent
    by a thread of their own, abandoned then (it sends no further batch)."""
    sent = [0]  # spans delivered so far, read when the deadline passes first
    if deadline is None:
        return _send_batches(exporter, spans, status, sent, None)
    try:
        return deadline.call(lambda: _send_batches(exporter, spans, status, sent, deadline), name="labkit-otlp")
    except TimeoutError:  # (with what the endpoint last answered: a 503 it kept sending, say)
        return sent[0], "; ".join(m for m in (_late(deadline), status() if status is not None else None) if m)


def _late(deadline: Deadline) -> str:
    return f"the export did not end within {deadline.seconds:g}s (the timeout, retries included)"


def _send_batches(exporter: Any, spans: Sequence[Any], status: Callable[[], str | None] | None,
                  sent: list[int], deadline: Deadline | None) -> tuple[int, str]:
    """:func:`_send`'s batches, ``sent[0]`` kept up to date. The OTLP exporter's own log lines are
    kept back (until the last batch returns, if abandoned too): the reason goes into the one error."""
    import logging

    from opentelemetry.sdk.trace.export import SpanExportResult

    class Keep(logging.Handler):
        last = ""  # the exporter's last error, after the last transient error it retried

        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            if record.levelno < logging.ERROR:
                Keep.transient = msg
            else:
                Keep.last = "; ".join(dict.fromkeys(m for m in (Keep.transient, msg) if m))

        transient = ""

    keep = Keep()
    saved = []
    for name in _OTLP_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.propagate))
        lg.addHandler(keep)
        lg.propagate = False
    delivered, reason = 0, ""
    try:
        for a in range(0, len(spans), _BATCH):
            batch = spans[a:a + _BATCH]
            if deadline is not None and deadline.expired:  # (abandoned, or about to be)
                reason = _late(deadline)
                break
            try:
                ok = exporter.export(batch) == SpanExportResult.SUCCESS
            except Exception as e:  # an exporter that raises delivered nothing
                ok, reason = False, f"{type(e).__name__}: {e}"
            if not ok:
                answered = status() if status is not None else None
                reason = reason or "; ".join(m for m in (answered, Keep.last) if m) or "the exporter reported a failure"
                break
            delivered += len(batch)
            sent[0] = delivered
    finally:
        for lg, prop in saved:
            lg.removeHandler(keep)
            lg.propagate = prop
    return delivered, " ".join(reason.split())[:300]


def run_records(run_dirs: Sequence[str | os.PathLike[str]] | str, *, skip_invalid: bool = False,
                ) -> tuple[list[dict[str, Any]], list[tuple[Path, list[Problem]]]]:
    """The trace records of run directories as :func:`export_runs` sends them (scores and feedback
    joined, each carrying its run's uuid), and (file, problems) of each traces.jsonl with lines
    that are no valid trace. Those lines are refused: a :class:`DatasetError` naming the file, line
    and field of each, before anything is sent; with ``skip_invalid`` they are left out and returned,
    for the caller to say how many and which."""
    from labkit.runs import RunDir
    from labkit.trace.joined import scored_records
    from labkit.trace.sql import TRACES_FILE

    if isinstance(run_dirs, str):
        run_dirs = [s.strip() for s in run_dirs.split(",") if s.strip()]
    recs: list[dict[str, Any]] = []
    skipped: list[tuple[Path, list[Problem]]] = []
    for d in run_dirs:
        uid = RunDir(d).run_uuid
        got, problems = scored_records(d)
        if problems and not skip_invalid:
            raise DatasetError(str(Path(d) / TRACES_FILE), problems)
        if problems:
            skipped.append((Path(d) / TRACES_FILE, problems))
        recs.extend({**r, "run_uuid": uid} for r in got)
    return recs, skipped


def export_runs(run_dirs: Sequence[str | os.PathLike[str]] | str, **kwargs: Any) -> int:
    """Export the traces of run directories, with their scores and feedback joined.

    Every record carries its run's uuid (:attr:`labkit.runs.RunDir.run_uuid`), so the OTel
    trace and span ids are the run's own: re-exporting a run sends the same ids again (a
    backend keeps one copy), two runs, even in folders of the same name, never share one.
    A line that is no valid trace is refused before anything is sent (:func:`run_records`)."""
    recs, _ = run_records(run_dirs)
    return export_traces(recs, **kwargs)
