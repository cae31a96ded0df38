"""Human review records of a run's answers: the one reader and writer of the reviews JSONL.

The gate's ``review: {required_for: {tag: value}}`` needs an approving review of every
matching case (labkit.gate.evaluate); ``labkit review`` and notebooks/07_review.ipynb
make the records. One JSON object per line (docs/formats.md, "Reviews")::

    {"schema_version": 1, "case_id": "sec-003", "run_id": "variant", "run_dir": "outputs/runs/…",
     "manifest_sha256": "…", "answer_sha256": "…", "decision": "approve",
     "note": "cites the runbook", "reviewer": "qa-1", "time": "2026-12-02T01:50:00Z"}

* A review judges one answer: it counts for a run only when its ``answer_sha256`` is the
  sha256 of that run's current answer to the case, so a review of an old answer does not
  count for a new one. The last record of a case for that answer wins.
* Records without ``schema_version`` (``case_id, reviewer, verdict, at``) name no answer:
  they count only where no run is judged (a plain dict of metrics).
* Writing: the free text (note, reviewer) is redacted first; the line is appended whole
  and fsynced after a torn tail of a killed writer is cut (labkit.paths.append_line).
* A rejected case is proposed as a regression case: an EvalCase line
  (``reg-review-<id>``, ``tags.kind = regression``), redacted, appended to the proposals file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, DatasetError, Problem
from labkit.paths import append_line

__all__ = ["DECISIONS", "REVIEWS_SCHEMA_VERSION", "ReviewCoverage", "answer_sha256", "append_line",
           "load_reviews", "proposals_path", "propose_regression_case", "read_reviews", "record_review", "review_coverage",
           "run_answers", "selected_cases"]

REVIEWS_SCHEMA_VERSION = 1
DECISIONS = ("approve", "reject", "needs_fix")
#: The approving verdicts of records without a schema_version.
LEGACY_APPROVED = ("approved", "approve", "pass", "ok")
_REQUIRED = ("case_id", "run_id", "answer_sha256", "decision", "reviewer", "time")
_LEGACY_REQUIRED = ("case_id", "reviewer", "verdict", "at")


def answer_sha256(answer: Any) -> str:
    """The sha256 of an answer as the run stored it (None and '' hash alike: no answer)."""
    return hashlib.sha256((answer if isinstance(answer, str) else "").encode("utf-8")).hexdigest()


def run_answers(run: Any) -> dict[str, str]:
    """{case_id: answer_sha256} of a run's results.jsonl."""
    from labkit.runs import RunDir

    rd = RunDir(run)
    if not rd.results_path.is_file():
        return {}
    return {str(r["case_id"]): answer_sha256(r.get("answer")) for r in rd.results()}


# ---- reading ----------------------------------------------------------------------------------
def _problems(rec: Mapping[str, Any], n: int) -> list[Problem]:
    if "schema_version" not in rec:
        return [Problem(n, f, "missing or not a non-empty string") for f in _LEGACY_REQUIRED
                if not isinstance(rec.get(f), str) or not rec[f].strip()]
    if rec["schema_version"] != REVIEWS_SCHEMA_VERSION:
        return [Problem(n, "schema_version", f"unsupported {rec['schema_version']!r} (this labkit reads "
                                             f"{REVIEWS_SCHEMA_VERSION})")]
    out = [Problem(n, f, "missing or not a non-empty string") for f in _REQUIRED
           if not isinstance(rec.get(f), str) or not rec[f].strip()]
    if isinstance(rec.get("decision"), str) and rec["decision"] not in DECISIONS:
        out.append(Problem(n, "decision", f"must be one of {', '.join(DECISIONS)}, got {rec['decision']!r}"))
    if not isinstance(rec.get("note", ""), str):
        out.append(Problem(n, "note", "must be a string"))
    return out


def _normalized(rec: dict[str, Any]) -> dict[str, Any]:
    """A legacy record in the fields of schema 1 (decision, time; no answer)."""
    if "schema_version" in rec:
        return rec
    ok = str(rec.get("verdict", "")).lower() in LEGACY_APPROVED
    return {**rec, "decision": "approve" if ok else "reject", "time": rec.get("at"), "answer_sha256": None}


def read_reviews(path: str | os.PathLike[str], *, missing_ok: bool = True) -> list[dict[str, Any]]:
    """Every review record of the file, in order, validated (a bad line is a DatasetError naming
    file, line and field; a torn last line of a killed writer is no record, left out); a file that
    does not exist holds no review when ``missing_ok``."""
    from labkit.io import input_error, jsonl_objects

    p = Path(path)
    if not p.exists():
        if not missing_ok:
            raise input_error(p, FileNotFoundError(2, "file not found"))
        return []
    problems: list[Problem] = []
    out: list[dict[str, Any]] = []
    for n, rec in jsonl_objects(p, problems, torn_tail_ok=True):
        bad = _problems(rec, n)
        problems.extend(bad)
        if not bad:
            out.append(_normalized(rec))
    if problems:
        raise DatasetError(str(p), problems)
    return out


def load_reviews(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The last review record of each case (whatever answer it judged)."""
    return {r["case_id"]: r for r in read_reviews(path, missing_ok=False)}


# ---- coverage ---------------------------------------------------------------------------------
def selected_cases(cases: Any, required_for: Mapping[str, str]) -> list[Any]:
    """The cases a gate's ``review.required_for`` selects (every tag matches)."""
    return [c for c in cases if all(c.tags.get(k) == v for k, v in required_for.items())]


@dataclass(frozen=True)
class ReviewCoverage:
    """Which of the selected cases have a review that counts, by decision."""

    need: tuple[str, ...]
    current: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # the review that counts
    stale: tuple[str, ...] = ()  # reviewed, but only for another answer than the run's

    def with_decision(self, decision: str) -> list[str]:
        return [c for c in self.need if self.current.get(c, {}).get("decision") == decision]

    @property
    def approved(self) -> list[str]:
        return self.with_decision("approve")

    @property
    def missing(self) -> list[str]:
        return [c for c in self.need if c not in self.current]

    @property
    def share(self) -> float:
        return len(self.approved) / len(self.need) if self.need else 1.0

    def reason(self) -> str:
        def ids(xs: Sequence[str]) -> str:
            return ", ".join(xs[:10]) + (" …" if len(xs) > 10 else "")

        parts = [f"{len(self.approved)}/{len(self.need)} approved"]
        for label, xs in (("missing", self.missing), ("rejected", self.with_decision("reject")),
                          ("needs fix", self.with_decision("needs_fix"))):
            if xs:
                parts.append(f"{label}: {ids(xs)}")
        if self.stale:
            parts.append(f"reviewed for another answer than the run's (not counted): {ids(list(self.stale))}")
        return "; ".join(parts)


def review_coverage(need: Sequence[str], records: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
                    answers: Mapping[str, str] | None) -> ReviewCoverage:
    """The review that counts for each needed case: the last one of the case that judged the
    run's current answer (``answers``: case_id -> answer_sha256; None: no run, any answer)."""
    # a mapping is {case_id: record} (its records need not repeat the case id)
    recs = [{**r, "case_id": k} for k, r in records.items()] if isinstance(records, Mapping) else list(records)
    current: dict[str, Mapping[str, Any]] = {}
    seen: set[str] = set()
    wanted = set(need)
    for r in recs:
        cid = str(r.get("case_id"))
        if cid not in wanted:
            continue
        seen.add(cid)
        if answers is None or (r.get("answer_sha256") is not None and r.get("answer_sha256") == answers.get(cid)):
            current[cid] = _normalized(dict(r)) if "decision" not in r else r
    stale = tuple(c for c in need if c in seen and c not in current)
    return ReviewCoverage(need=tuple(need), current=current, stale=stale)


# ---- writing ----------------------------------------------------------------------------------
def _result_of(rd: Any, case_id: str) -> Mapping[str, Any]:
    for r in rd.results():
        if str(r["case_id"]) == case_id:
            return r
    raise ConfigError(f"no result for case {case_id!r} in this run", path=str(rd.results_path), field="case_id")


def record_review(reviews: str | os.PathLike[str], run: Any, case_id: str, *, decision: str, reviewer: str,
                  note: str = "", time: str | None = None, redactor: Any = None) -> dict[str, Any]:
    """Append one review of the run's current answer to ``case_id``, its free text redacted
    (:func:`review_redactor` of ``redactor``, default the run's settings); returns the line written."""
    from labkit.io import file_hash
    from labkit.runs import RunDir

    if decision not in DECISIONS:
        raise ConfigError(f"unknown decision {decision!r}", field="decision", known=list(DECISIONS))
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise ConfigError("a review names its reviewer (a non-empty string)", field="reviewer")
    rd = RunDir(run)
    result = _result_of(rd, case_id)
    red = review_redactor(rd.redaction if redactor is None else redactor)
    free = red.redact({"note": note or "", "reviewer": reviewer.strip(), "run_dir": str(rd.path)})
    line = {"schema_version": REVIEWS_SCHEMA_VERSION, "case_id": case_id, "run_id": rd.run_id,
            "run_dir": free["run_dir"],  # (informational: a review is matched by run and answer, not path)
            "manifest_sha256": file_hash(rd.manifest_path) if rd.manifest_path.is_file() else None,
            "answer_sha256": answer_sha256(result.get("answer")), "decision": decision,
            "note": free["note"], "reviewer": free["reviewer"],
            "time": time or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    append_line(reviews, line)
    return line


def review_redactor(settings: Any) -> Any:
    """The redactor of review lines and proposed cases: a Redactor as it is; else, for a run's
    ``redaction`` settings, the whole catalogue plus the run's extra patterns. A run that turned
    redaction off, or captures no content, keeps neither choice here: a review is a person's text
    and a proposed case must stay readable."""
    from labkit.trace.redact import Redactor

    if isinstance(settings, Redactor):
        return settings
    extra = settings.get("extra_patterns") if isinstance(settings, Mapping) else None
    return Redactor.from_config({"extra_patterns": extra} if extra else None)


def proposals_path(reviews: str | os.PathLike[str], proposals: str | os.PathLike[str] | None = None) -> Path:
    """Where rejected cases are proposed: ``proposals``, else regression_proposals.jsonl beside the
    reviews; a ConfigError when that is the reviews file (one file could hold neither)."""
    from labkit.paths import same_output

    out = Path(proposals) if proposals else Path(reviews).with_name("regression_proposals.jsonl")
    if same_output(out, reviews):
        given = "" if proposals else " (by default regression_proposals.jsonl beside the reviews)"
        raise ConfigError(f"--proposals {out}{given} is the --reviews file: give another file for the "
                          "proposed regression cases", field="proposals")
    return out


def propose_regression_case(proposals: str | os.PathLike[str], case: Any, review: Mapping[str, Any], *,
                            redactor: Any = None) -> bool:
    """Append the rejected ``case`` as a proposed regression case (an EvalCase line), redacted
    (:func:`review_redactor` of ``redactor``: a Redactor, or the run's redaction settings; default
    the catalogue's) like every line labkit writes; False when that case and answer are proposed already."""
    from labkit.cases import EvalCase
    from labkit.io import iter_jsonl, loads_line

    cd = case.to_dict()
    cd["id"] = f"reg-review-{case.id}"
    cd["tags"] = {**dict(case.tags), "kind": "regression", "origin_kind": case.kind or "unknown"}
    cd["metadata"] = {**dict(case.metadata), "source_case": case.id, "rejected_in_run": review.get("run_id"),
                      "answer_sha256": review.get("answer_sha256"), "review_note": review.get("note", ""),
                      "reviewer": review.get("reviewer"), "proposed": str(review.get("time", ""))[:10]}
    red = review_redactor(redactor)
    line = EvalCase.from_dict(red.redact(cd)).to_dict()
    p = Path(proposals)
    if p.exists():
        for _, text, complete in iter_jsonl(p):
            if not complete:
                continue
            old = loads_line(text)
            if not isinstance(old, dict) or old.get("id") != line["id"]:
                continue
            meta = old.get("metadata")
            if isinstance(meta, dict) and meta.get("answer_sha256") == review.get("answer_sha256"):
                return False
    append_line(p, line)
    return True
