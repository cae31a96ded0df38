"""The review workbench (labkit.views.review) driven through its widget callbacks, no browser:
approving every high-risk case makes the gate's review check pass; a review of another answer
of the same case does not count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import labkit
from labkit.cases import EvalCase
from labkit.display import VERDICT_MIME
from labkit.gate import Gate
from labkit.gate.review_queue import ReviewItem
from labkit.views.review import ReviewWorkbench, coverage_counts, item_html

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "data" / "quick_lab.jsonl"
HIGH = ["ql-01", "ql-02", "ql-08", "ql-09"]
GATE = Gate.from_dict({"name": "reviewed", "review": {"required_for": {"risk": "high"}}})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The quick-lab set run by the baseline and the variant (simulated model)."""
    base = tmp_path_factory.mktemp("wb-runs")
    cases = labkit.load_cases(QUICK)
    return {name: Path(labkit.run(cases, ROOT / "data" / "pipelines" / f"{name}.yaml", base / name,
                                  overrides={"progress": False}).path) for name in ("baseline", "variant")}


def _click(wb: ReviewWorkbench, case_id: str, decision: str, note: str = "", reviewer: str = "qa") -> None:
    wb._w["case"].value = case_id
    wb._w["reviewer"].value = reviewer
    wb._w["note"].value = note
    wb._w[f"button_{decision}"].click()


def _gate_review(run: Path, reviews: Path):
    (c,) = [c for c in GATE.evaluate(run, reviews=reviews).checks if c.kind == "review"]
    return c


def test_approving_every_high_risk_case_passes_the_gate_review(runs: dict[str, Path], tmp_path: Path) -> None:
    rv = tmp_path / "reviews.jsonl"
    wb = ReviewWorkbench(runs["variant"], GATE, reviews=rv)
    wb.widget()
    assert [v for _, v in wb._w["case"].options] == HIGH
    assert "0/4" in wb._w["coverage"].value and not rv.exists()
    for cid in HIGH:
        _click(wb, cid, "approve", note="checked against the runbook")
        assert f"recorded approve of {cid} by qa" in wb._w["status"].value
    assert "4/4" in wb._w["coverage"].value and wb.coverage.share == 1.0
    assert [label for label, _ in wb._w["case"].options] == [f"{c} — approve" for c in HIGH]
    assert wb._w["note"].value == ""  # cleared for the next case
    assert [json.loads(x)["decision"] for x in rv.read_text().splitlines()] == ["approve"] * 4
    assert _gate_review(runs["variant"], rv).passed


def test_a_review_of_another_answer_of_the_same_case_does_not_count(runs: dict[str, Path], tmp_path: Path) -> None:
    rv = tmp_path / "reviews.jsonl"
    old = ReviewWorkbench(runs["baseline"], GATE, reviews=rv)
    old.widget()
    for cid in HIGH:
        _click(old, cid, "approve")
    assert _gate_review(runs["baseline"], rv).passed
    new = ReviewWorkbench(runs["variant"], GATE, reviews=rv)  # same cases, new answers
    assert new.coverage.approved == [] and new.coverage.stale == tuple(HIGH)
    assert all(it.decision == "reviewed for another answer" for it in new.queue.items)
    c = _gate_review(runs["variant"], rv)
    assert not c.passed and c.observed == 0.0
    new.widget()
    _click(new, "ql-01", "approve")
    assert new.coverage.approved == ["ql-01"] and _gate_review(runs["variant"], rv).observed == 0.25


def test_reject_proposes_a_regression_case_and_needs_fix_does_not(runs: dict[str, Path], tmp_path: Path) -> None:
    rv = tmp_path / "reviews.jsonl"
    wb = ReviewWorkbench(runs["variant"], GATE, reviews=rv)
    wb.widget()
    _click(wb, "ql-08", "reject", note="drops the exception for legal holds")
    assert "proposed as regression case reg-review-ql-08" in wb._w["status"].value
    _click(wb, "ql-09", "needs_fix", note="too curt")
    assert "proposed" not in wb._w["status"].value
    (proposed,) = labkit.load_cases(tmp_path / "regression_proposals.jsonl")
    assert proposed.id == "reg-review-ql-08" and proposed.metadata["review_note"] == "drops the exception for legal holds"
    assert "rejected: ql-08" in _gate_review(runs["variant"], rv).reason
    assert "needs fix: ql-09" in wb.coverage.reason()


def test_a_decision_without_a_reviewer_is_refused_in_the_status_line(runs: dict[str, Path], tmp_path: Path) -> None:
    rv = tmp_path / "reviews.jsonl"
    wb = ReviewWorkbench(runs["variant"], GATE, reviews=rv)
    wb.widget()
    _click(wb, "ql-01", "approve", reviewer="  ")
    assert "names its reviewer" in wb._w["status"].value and not rv.exists()


def test_static_view_renders_queue_and_coverage(runs: dict[str, Path], tmp_path: Path) -> None:
    rv = tmp_path / "reviews.jsonl"
    wb = ReviewWorkbench(runs["variant"], GATE, reviews=rv, reviewer="qa")
    wb.decide("ql-02", "approve")
    v = wb.verdict()
    assert v.status == "fail" and "1/4" in v.title and VERDICT_MIME in v._repr_mimebundle_()
    page = wb.show(interactive=False).html
    assert "n = 4 risk=high case(s), 1 approved" in page
    for cid in HIGH:
        assert f"id='review-{cid}'" in page
    assert "Retrieved context" in page and "security-runbook#2" in page and "trace" in page
    assert "faithfulness</code> (0–1)" in page and "latency_ms</code> (ms)" in page
    assert "1 approved, 0 rejected, 0 need a fix, 3 not reviewed" in wb.summary().html


def test_unsupported_sentences_are_marked_and_text_escaped() -> None:
    case = EvalCase(id="x<1>", question="Is <b>this</b> ok?")
    answer = "Refunds go to the original card. Refunds are approved by the moon <script>."
    item = ReviewItem(case=case, status="ok", answer=answer, answer_sha256="ab" * 32,
                      claims=(("Refunds go to the original card.", True),
                              ("Refunds are approved by the moon <script>.", False)),
                      contexts=(("billing#1", "Refunds go to the original card."),), metrics={"faithfulness": 0.5},
                      trace=())
    page = item_html(item)
    assert "<mark class='lk-unsupported'" in page
    assert "Refunds are approved by the moon &lt;script&gt;.</mark>" in page
    assert "<script>" not in page and "<b>this</b>" not in page
    assert "1 of 2 sentence(s) not supported" in page and "no trace recorded" in page


def test_an_answer_not_judged_is_shown_not_judged_not_unsupported(tmp_path: Path) -> None:
    """No retrieved context: the workbench marked every sentence "not supported by the retrieved
    context" and counted the answer among those that hold one, though its faithfulness is unmeasured."""
    def no_retrieval(case: EvalCase) -> dict[str, object]:  # (a plain function, no simulated model)
        return {"answer": "Please contact support for help with identity verification in the security portal."}

    run = Path(labkit.run(labkit.load_cases(QUICK), no_retrieval, tmp_path / "run", overrides={"progress": False}).path)
    wb = ReviewWorkbench(run, GATE, reviews=tmp_path / "reviews.jsonl", reviewer="qa")
    page = wb.show(interactive=False).html
    assert "lk-unsupported" not in page and "not supported by the retrieved context" not in page, page
    assert page.lower().count("not judged (no context)") >= 2 * len(HIGH)  # (the table and each card)
    summary = wb.summary().html
    assert "0 of the answers hold" in summary and f"{len(HIGH)} not judged (no context)" in summary, summary


def test_coverage_chart_counts_each_decision(runs: dict[str, Path], tmp_path: Path) -> None:
    wb = ReviewWorkbench(runs["variant"], GATE, reviews=tmp_path / "reviews.jsonl", reviewer="qa")
    wb.decide("ql-01", "approve")
    wb.decide("ql-02", "reject")
    assert coverage_counts(wb.queue) == [("approved", 1), ("rejected", 1), ("needs fix", 0),
                                         ("reviewed for another answer", 0), ("not reviewed", 2)]
    chart = wb.coverage_chart()
    assert chart.png.startswith(b"\x89PNG") and "1 of 4 risk=high cases approved" in chart.caption


def test_queue_and_case_number_cells_carry_their_kind(runs: dict[str, Path], tmp_path: Path) -> None:
    from tests.number_cells import bad_number_cells, kinds_of

    wb = ReviewWorkbench(runs["variant"], GATE, reviews=tmp_path / "reviews.jsonl", reviewer="qa")
    page = wb.show(interactive=False).html
    assert bad_number_cells(page) == []
    assert {"score", "ms"} <= kinds_of(page)
