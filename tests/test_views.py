"""labkit.views: tables with pass/fail, charts (Agg, PNG inline), banners, escaping, footer."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import labkit
from labkit import display
from labkit.cases import as_cases
from labkit.display import VERDICT_MIME, Verdict
from labkit.gate import Gate
from labkit.views import answers, charts, elements, footer, frames, tables, verdicts

ROOT = Path(__file__).resolve().parents[1]
XSS_Q = 'Why <script>window.__pwned=1</script> and <img src=x onerror="window.__pwned=2">?'


def _m(value: float | None, lo: float | None = None, hi: float | None = None, stage: str = "generation") -> dict:
    return {"stage": stage, "value": value, "ci_low": lo, "ci_high": hi, "n": 20, "unmeasured": 0}


BASE = {"k": 5, "n_cases": 20, "n_missing": 0, "metrics": {
    "faithfulness": _m(0.9, 0.8, 0.97),
    "retrieval_hit_rate": _m(0.85, 0.6, 0.95, "retrieval"),
    "latency_p95_ms": _m(3100.0, 2900.0, 3300.0, "ops"),
    "cost_per_success": _m(0.06, 0.05, 0.07, "ops"),
    "answer_relevance": _m(None, stage="generation"),
}, "slices": {"risk=high": {"faithfulness": _m(0.7, 0.5, 0.9)}, "risk=low": {"faithfulness": _m(0.95, 0.9, 1.0)}}}
VAR = {"k": 5, "n_cases": 20, "n_missing": 0, "metrics": {
    "faithfulness": _m(0.8, 0.7, 0.9),
    "retrieval_hit_rate": _m(0.9, 0.7, 0.97, "retrieval"),
    "latency_p95_ms": _m(1200.0, 1100.0, 1300.0, "ops"),
    "cost_per_success": _m(0.02, 0.01, 0.03, "ops"),
    "answer_relevance": _m(None, stage="generation"),
}, "slices": {"risk=high": {"faithfulness": _m(0.6, 0.4, 0.8)}}}
GATE = Gate.from_dict({"name": "g", "checks": [
    {"metric": "faithfulness", "op": ">=", "threshold": 0.85},
    {"metric": "retrieval_hit_rate", "op": ">=", "threshold": 0.80},
    {"metric": "latency_p95_ms", "op": "<=", "threshold": 3500},
]})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, labkit.RunDir]:
    out = tmp_path_factory.mktemp("runs")
    cases = labkit.load_cases(ROOT / "data" / "quick_lab.jsonl")
    return {
        "baseline": labkit.run(cases, ROOT / "data/pipelines/baseline.yaml", out / "b", overrides={"progress": False}),
        "variant": labkit.run(cases, ROOT / "data/pipelines/variant.yaml", out / "v", overrides={"progress": False}),
    }


def test_the_gate_tables_coverage_row_says_what_its_value_is() -> None:
    """The coverage check's value is the share of cases without a result: the table showed "0"
    (read as no case judged); it shows "25.0% missing", as the gate's summary does."""
    partial = {**VAR, "n_cases": 15, "n_missing": 5}
    table = tables.gate_table(GATE.evaluate(partial), caption="Variant.").to_html().replace("\xa0", " ")
    assert "25.0% missing" in table and "&lt;= 0.0%" in table and "share of cases" in table, table
    assert "lk-k-pct" in table  # (a share: its cells are of the percent kind, not counts)


def test_gate_table_says_cases_judged_and_flips_name_their_metric() -> None:
    partial = {**VAR, "n_cases": 15, "n_missing": 5}
    table = tables.gate_table(GATE.evaluate(partial), caption="Variant.").to_html().replace("\xa0", " ")
    assert "Judged 15 of 20 cases (5 missing)." in table and "20 (min 20)" in table
    flip = {"case_id": "c1", "from": "pass", "to": "fail", "metric": "task_success_rate",
            "cause": "must_include_coverage 1 → 0.5"}
    html = answers.flipped_table({"flipped": [flip]})._repr_html_()
    assert "<td>task_success_rate (must_include_coverage 1 → 0.5)</td>" in html


def test_metrics_table_side_by_side_with_pass_fail() -> None:
    html = tables.metrics_table({"baseline": BASE, "variant": VAR}, gate=GATE).to_html().replace("\xa0", " ")
    assert "baseline" in html and "variant" in html
    assert "0.900  [0.800 – 0.970]" in html
    assert "3,100 ms" in html and "&gt;= 0.850" in html
    assert "— (unmeasured)" in html
    # baseline faithfulness passes (green), variant fails (red)
    assert display.PASS_BG in html and display.FAIL_BG in html
    frame = frames.metrics_frame({"baseline": BASE})
    assert frame["stage"].iloc[0] == "retrieval"  # stage order


def test_gate_table_and_banners() -> None:
    rep_b, rep_v = GATE.evaluate(BASE), GATE.evaluate(VAR)
    table = tables.gate_table(rep_v).to_html()
    assert "FAIL" in table and "pass" in table and display.FAIL_BG in table
    v = verdicts.ship_decision(rep_v, rep_b)
    assert v.status == "fail" and "NO-SHIP" in v.title and "faithfulness" in v.detail
    assert verdicts.ship_decision(rep_b).status == "pass"
    bundle = v._repr_mimebundle_()
    assert bundle[VERDICT_MIME]["status"] == "fail"
    assert "NO-SHIP" in bundle["text/html"]
    assert verdicts.gate_banner(rep_b, "baseline").status == "pass"
    assert verdicts.gaps_verdict([]).status == "pass"
    assert verdicts.gaps_verdict(["no adversarial cases"]).status == "warn"


def _png_size(chart: elements.Chart) -> tuple[int, int]:
    png = chart.png
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_stage_chart_is_an_inline_png_with_caption() -> None:
    chart = charts.stage_chart({"baseline": BASE, "variant": VAR}, gate=GATE)
    w, h = _png_size(chart)
    assert w > 600 and h > 200
    html = chart._repr_html_()
    assert html.count("<img") == 1 and 'src="data:image/png;base64,' in html
    assert "<figcaption" in html and "95% interval" in html
    b64 = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(b64) == chart.png
    assert b"matplotlib.org" not in chart.png  # no software URL chunk


def test_charts_need_no_pyplot_and_run_under_agg() -> None:
    code = (
        "import sys, json\n"
        "from labkit.views import charts\n"
        f"m = json.loads({json.dumps(json.dumps(BASE))})\n"
        "c = charts.stage_chart({'baseline': m})\n"
        "s = charts.slice_chart({'baseline': m}, 'faithfulness')\n"
        "import matplotlib\n"
        "print(matplotlib.get_backend().lower(), 'matplotlib.pyplot' in sys.modules, len(c.png) > 1000)\n"
    )
    env = {"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["agg", "False", "True"]


def test_slice_views() -> None:
    t = tables.slice_table({"baseline": BASE, "variant": VAR}, "faithfulness", gate=GATE).to_html()
    assert "risk=high" in t and "risk=low" in t and "(n=20)" in t
    assert display.FAIL_BG in t  # 0.7 misses 0.85
    c = charts.slice_chart({"baseline": BASE, "variant": VAR}, "faithfulness", tag="risk", gate=GATE)
    assert _png_size(c)[0] > 500


def test_user_text_is_escaped_everywhere(runs: dict[str, labkit.RunDir]) -> None:
    ds = as_cases([{"id": "x<1>", "question": XSS_Q, "tags": {"category": "<b>cat</b>", "risk": "high"}}])
    for html in (
        tables.cases_table(ds).to_html(),
        elements.callout(XSS_Q)._repr_html_(),
        elements.bullet_list([XSS_Q])._repr_html_(),
        footer.run_footer({"q": XSS_Q})._repr_html_(),
        answers.flipped_table({"flipped": [{"case_id": "x<1>", "from": "pass", "to": "fail"}]}, ds)._repr_html_(),
        answers.trace_details(runs, ["x<1>"], ds)._repr_html_(),
        Verdict("fail", XSS_Q, XSS_Q).to_html(),
    ):
        assert "<script" not in html
        assert "<img src=x" not in html and "<img src=\"x" not in html
        assert "&lt;script&gt;" in html or "&lt;1&gt;" in html
    assert "<b>" not in tables.dataset_summary(ds)._repr_html_()


def test_run_footer_has_the_metadata(runs: dict[str, labkit.RunDir]) -> None:
    ds = labkit.load_cases(ROOT / "data" / "quick_lab.jsonl")
    meta = footer.run_metadata({"seed": 0}, dataset=ds, runs=list(runs.values()))
    assert meta["labkit_version"] == labkit.__version__
    assert meta["git_sha"] and meta["generated_at"].endswith("UTC")
    assert list(meta["dataset_fingerprints"].values()) == [ds.fingerprint]
    html = footer.run_footer({"seed": 0}, dataset=ds, runs=list(runs.values()))._repr_html_()
    for needle in ("Run metadata", "labkit version", "git sha", "dataset fingerprint", ds.fingerprint[:16],
                   "seed", "UTC"):
        assert needle in html


def test_views_on_real_runs(runs: dict[str, labkit.RunDir]) -> None:
    ds = labkit.load_cases(ROOT / "data" / "quick_lab.jsonl")
    html = tables.metrics_table(runs, gate=GATE, metrics=tables.QUICK_LAB_METRICS).to_html()
    for m in tables.QUICK_LAB_METRICS:
        assert m in html
    assert _png_size(charts.stage_chart(runs, gate=GATE, metrics=tables.QUICK_LAB_METRICS))[0] > 600
    comp = labkit.compare_runs(runs["baseline"].path, runs["variant"].path)
    assert "delta" in tables.compare_table(comp).to_html()
    flips = answers.flipped_table(comp, ds)._repr_html_()
    details = answers.trace_details(runs, comp, ds)._repr_html_()
    for f in comp.to_dict()["flipped"]:
        anchor = answers.trace_anchor("baseline", f["case_id"])
        assert f"href='#{anchor}'" in flips and f"id='{anchor}'" in details
    assert "SIMULATED" in verdicts.simulated_notice(runs["baseline"])._repr_html_()
    assert "Gate g" in tables.thresholds_table(GATE).to_html()
    assert "cases" in answers.answers_table(runs["baseline"], ds).to_html()
    assert _png_size(charts.coverage_chart(ds))[0] > 600


def test_ship_decision_says_how_many_checks_the_baseline_passes() -> None:
    import re

    rep_b, rep_v = GATE.evaluate(BASE), GATE.evaluate(VAR)
    n = len(rep_b.checks)
    passed = sum(c.passed for c in rep_b.checks)
    detail = verdicts.ship_decision(rep_v, rep_b).detail
    # "fails the same gate (2/3 checks)" read as "fails 2 of 3"; the count now says what it counts
    assert f"passes {passed} of {n} checks" in detail
    assert not re.search(r"\d+/\d+ checks", detail)


def test_case_ids_do_not_wrap_in_report_tables() -> None:
    import re

    ds = as_cases([{"id": "sec-injection-007", "question": "q?"}])
    html_ = tables.cases_table(ds).to_html()
    cell_id = re.search(r'<td id="(T_\w+_row0_col0)"[^>]*><span class="lk-id" title="sec-injection-007"[^>]*>'
                        r"sec-injection-007</span></td>", html_)
    assert cell_id, html_
    assert re.search(r"#" + cell_id.group(1) + r"[^{]*\{[^}]*white-space: nowrap", html_)
    flips = answers.flipped_table({"flipped": [{"case_id": "sec-injection-007", "metric": "faithfulness",
                                                "from": "pass", "to": "fail"}]})
    assert re.search(r"<td[^>]*white-space:nowrap[^>]*><code[^>]*>sec-injection-007</code>", str(flips))
    css = (ROOT / "labkit/templates/labkit_report/index.html.j2").read_text()
    assert re.search(r"\.lk-id[^{]*\{[^}]*white-space:\s*nowrap", css)


def test_dollar_amounts_are_never_read_as_math() -> None:
    # JupyterLab typesets $...$ in HTML outputs with MathJax unless a container opts out
    import re

    no_math = re.compile(r'class="[^"]*\bmathjax_ignore\b[^"]*"')
    table = tables.metrics_table({"baseline": BASE, "variant": VAR}).to_html()
    assert "$0.0600" in table and no_math.search(table)
    banner = Verdict("fail", "cost_per_success $0.0600 > $0.0500", "cost $0.06 [$0.05 – $0.07]")
    assert no_math.search(banner.to_html())
    frag = elements.callout("cost $0.0142 [$0.0079 – $0.0389]")._repr_html_()
    assert no_math.search(frag)
    assert "$0.0142" in frag


def test_report_export_still_shows_dollars(tmp_path: Path) -> None:
    import nbformat

    from labkit.report.export import export_html

    table = tables.metrics_table({"baseline": BASE}).to_html()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Cost"),
                nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output(
                    "display_data", data={"text/html": table})])]
    page = export_html(nb, tmp_path / "p.html").read_text(encoding="utf-8")
    assert "$0.0600" in page and "&#36;" not in page


def _number_cells(html_: str) -> list[tuple[str, str]]:
    """(class, text) of every <td> of a rendered table."""
    import re

    out = []
    for m in re.finditer(r"<td([^>]*)>(.*?)</td>", html_, re.S):
        cls = re.search(r'class="([^"]*)"', m.group(1))
        out.append((cls.group(1) if cls else "", re.sub(r"<[^>]+>", "", m.group(2)).strip()))
    return out


def test_number_cells_carry_their_kind_and_unit() -> None:
    import re

    html_ = tables.metrics_table({"baseline": BASE, "variant": VAR}, gate=GATE).to_html()
    assert "3,100\xa0ms" in html_  # a number and its unit never break apart
    html_ = html_.replace("\xa0", " ")
    cells = _number_cells(html_)
    kinds = {re.search(r"lk-k-(\w+)", c).group(1) for c, _ in cells if "lk-num" in c}  # type: ignore[union-attr]
    assert {"score", "ms", "usd"} <= kinds
    for cls, text in cells:
        if text in ("", "—", "— (unmeasured)"):
            continue
        if "lk-k-ms" in cls:
            assert "ms" in text, text
        if "lk-k-usd" in cls:
            assert "$" in text, text
    # n beside every aggregate
    assert "0.900  [0.800 – 0.970]  (n=20)" in html_
    assert all(k in elements.NUMBER_KINDS for k in kinds)


def test_gate_table_reasons_and_regression_thresholds_have_units() -> None:
    from types import SimpleNamespace as NS

    checks = [NS(name="latency_p95_ms <= 3500", metric="latency_p95_ms", op="<=", threshold=3500.0,
                 observed=2756.0, passed=True, reason="2756 <= 3500", n=10, min_n=10, kind="absolute"),
              NS(name="faithfulness no worse than baseline by 0.02", metric="faithfulness", op=None, threshold=0.02,
                 observed=-0.173, passed=False, reason="delta -0.173", n=62, min_n=10, kind="regression")]
    html_ = tables.gate_table(NS(checks=checks, gate="g", passed=False, cases=None)).to_html().replace("\xa0", " ")
    assert "2,756 ms ≤ 3,500 ms" in html_
    assert "max drop 0.020" in html_ and "−0.173" in html_ and "None" not in html_


def test_long_ids_are_cut_with_the_full_id_on_hover() -> None:
    long_id = "fae3834721d3394c9cb1a273bb5e6f42"
    cell = elements.id_html(long_id, 12)
    assert f'title="{long_id}"' in cell and ">fae383…e6f42<" in cell
    a, b = elements.id_html("gen-account-management-01"), elements.id_html("gen-account-management-02")
    assert a.split(">")[1] != b.split(">")[1]  # ids that differ at the end stay apart
    assert elements.id_html("<x>") .count("&lt;x&gt;") == 2  # escaped in the title and the text
    with pytest.raises(ValueError):
        elements.num_class("furlongs")


def test_numbers_never_break_from_their_unit() -> None:
    nb = "\xa0"
    assert elements.unbreakable("2,756 ms [2,499 ms – 2,808 ms]  (n=10)") == (
        f"2,756{nb}ms [2,499{nb}ms – 2,808{nb}ms]  (n=10)")  # breaks left: between the values
    assert elements.unbreakable("9 (min 10)") == f"9{nb}(min{nb}10)"
    assert elements.unbreakable("<= 3,500 ms") == f"<={nb}3,500{nb}ms"


def test_flipped_diff_shows_chunks_status_and_unsupported_sentences(runs: dict[str, labkit.RunDir]) -> None:
    comp = labkit.compare_runs(runs["baseline"].path, runs["variant"].path)
    ds = labkit.load_cases(ROOT / "data" / "quick_lab.jsonl")
    flips = comp.to_dict()["flipped"]
    html_ = str(answers.flipped_diff(runs, comp, ds))
    if not flips:
        pytest.fail("the quick-lab runs are expected to flip at least one case")
    assert html_.count("class='lk-flip'") == len(flips)
    assert "status:" in html_ and "retrieved chunks:" in html_
    for f in flips:
        assert f["case_id"] in html_ and str(f["metric"]) in html_


def test_flipped_diff_reads_a_chunks_text_from_the_corpus_as_scoring_does(runs: dict[str, labkit.RunDir],
                                                                         tmp_path: Path) -> None:
    """A run whose retrieved items name their chunks without their text (scored against the corpus,
    as scoring reads them): the diff judged the answer against no text and marked every sentence
    unsupported. It reads each chunk's text as scoring does: its own, else the corpus's."""
    import shutil

    copy = tmp_path / "v"
    shutil.copytree(runs["variant"].path, copy)
    lines = [json.loads(x) for x in (copy / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    for r in lines:
        for it in r.get("retrieved") or []:
            it.pop("text", None)
    (copy / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    ok = [r["case_id"] for r in lines if r.get("status") == "ok" and r.get("answer") and r.get("retrieved")]
    flips = {"flipped": [{"case_id": cid, "from": "pass", "to": "fail", "metric": "faithfulness"} for cid in ok]}

    def notes(run: Any) -> list[str]:
        html_ = str(answers.flipped_diff({"baseline": runs["baseline"].path, "variant": run}, flips))
        return re.findall(r"<strong>variant</strong>.*?font-size:\.85rem'>([^<]*)</div>", html_)

    want = notes(runs["variant"].path)
    assert len(want) == len(ok) and any("every sentence supported" in n for n in want), want
    assert notes(copy) == want


def test_flipped_diff_marks_no_sentence_of_a_run_another_kind_of_judge_scored(runs: dict[str, labkit.RunDir],
                                                                              tmp_path: Path) -> None:
    """The diff marks sentences with the lexical judge the run was scored by; a run an LLM judge
    scored (or one of options this labkit does not know) is shown unmarked, never with the lexical
    judge's marks taken for its verdicts, and never a traceback."""
    import shutil

    for judge in ({"type": "llm", "model": "judge-model"}, {"type": "lexical", "no_such_option": 1}):
        copy = tmp_path / f"v-{judge['type']}"
        shutil.copytree(runs["variant"].path, copy)
        man = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
        man["scoring"]["judge"] = judge
        (copy / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
        ok = next(r["case_id"] for r in labkit.RunDir(copy).results() if r.get("status") == "ok")
        html_ = str(answers.flipped_diff({"baseline": runs["baseline"].path, "variant": copy},
                                         {"flipped": [{"case_id": ok, "from": "pass", "to": "fail",
                                                       "metric": "faithfulness"}]}))
        side = html_[html_.index("<strong>variant</strong>"):]
        assert "no per-sentence judge" in side and "<mark" not in side, judge


def test_marked_answer_marks_only_unsupported_sentences() -> None:
    from labkit.judges import LexicalJudge

    ctx = ["API keys expire 90 days after they are created."]
    body, n = answers.marked_answer("API keys expire after 90 days. [kb#1] Refunds are approved by robots on Mars.",
                                    ctx, LexicalJudge())
    assert n == 1
    assert "<mark class='lk-unsupported'" in body and "Refunds are approved by robots on Mars." in body
    assert body.index("[kb#1]") < body.index("<mark")  # the citation stays with the sentence it cites
    plain, n0 = answers.marked_answer("<b>x</b> y z.", ctx, None)
    assert n0 == 0 and plain == "&lt;b&gt;x&lt;/b&gt; y z."


def test_why_paragraphs_explain_the_verdict() -> None:
    from types import SimpleNamespace as NS

    failed = NS(name="faithfulness >= 0.85", metric="faithfulness", op=">=", threshold=0.85, observed=0.798,
                passed=False, n=62)
    ok = NS(name="latency_p95_ms <= 3500", metric="latency_p95_ms", op="<=", threshold=3500.0, observed=1640.0,
            passed=True, n=70)
    text = str(verdicts.ship_why(NS(checks=[failed, ok], gate="release", passed=False),
                                 comparison={"n_paired": 70, "metrics": {"faithfulness": {"verdict": "regressed"}},
                                             "flipped": [{"case_id": "a", "to": "fail"}]}))
    assert 'class="lk-why"' in text
    assert "fails 1 of 2 checks of gate release: faithfulness &gt;= 0.85: observed 0.798 (n=62)" in text
    assert "1 regressed (faithfulness)" in text and "1 case(s) flipped, 1 of them from pass to fail" in text
    ds = as_cases([{"id": "a", "question": "q?"}])
    assert "1 gap(s)" in str(verdicts.gaps_why(ds, ["fewer than 20 cases"]))


def test_a_unit_in_a_column_header_never_breaks() -> None:
    import pandas as pd

    head = elements.header_html("faithfulness (0–1) <b>")
    assert head == 'faithfulness <span style="white-space:nowrap">(0–1)</span> &lt;b&gt;'
    page = elements.styler(pd.DataFrame({"n (min 10)": [1]}), {"n (min 10)": "count"}).to_html()
    assert '<span style="white-space:nowrap">(min 10)</span>' in page


QUICK_MIN_N = Gate.from_dict({"name": "quick-lab", "checks": [
    {"metric": "faithfulness", "op": ">=", "threshold": 0.85, "min_n": 9},
    {"metric": "retrieval_hit_rate", "op": ">=", "threshold": 0.80, "min_n": 9},
    {"metric": "latency_p95_ms", "op": "<=", "threshold": 3500, "min_n": 10},
]})


@pytest.fixture(scope="module")
def two_case_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The quick lab's two pipelines on 2 of its cases: every check of QUICK_MIN_N has too few."""
    from labkit.gate.bar import record_bar

    out = tmp_path_factory.mktemp("two")
    record_bar(QUICK_MIN_N, out)
    cases = labkit.load_cases(ROOT / "data" / "quick_lab.jsonl")[:2]
    return {name: Path(labkit.run(cases, ROOT / f"data/pipelines/{name}.yaml", out / name,
                                  overrides={"progress": False}).path)
            for name in ("baseline", "variant")} | {"dir": out}


def test_decision_text_gives_the_gates_reason_for_too_few_cases(two_case_runs: dict[str, Path]) -> None:
    from labkit.gate.bar import record_bar
    from labkit.views import decision

    base, var, out = two_case_runs["baseline"], two_case_runs["variant"], two_case_runs["dir"]
    rep_v, rep_b = QUICK_MIN_N.evaluate(var), QUICK_MIN_N.evaluate(base)
    assert all(c.n == 2 and not c.passed for c in rep_v.checks if c.kind == "absolute")
    bar = record_bar(QUICK_MIN_N, out)
    banner = decision.honest_decision(bar, QUICK_MIN_N, var, base)
    summary = str(decision.decision_summary(rep_v, rep_b, bar, var))
    why = str(verdicts.ship_why(rep_v, rep_b))
    few = "faithfulness &gt;= 0.85: computed on 2 cases; min_n is 9: too few cases to judge"
    for text in (summary, why, banner.detail.replace(">", "&gt;")):
        assert few in text, text
        assert "observed 1.000" not in text  # a value that meets 0.85 is not shown as the miss
    assert banner.title == "NO-SHIP: the variant fails 3 check(s), 3 of them on too few cases"
    assert "judged on 2 cases (faithfulness 95% interval" in summary and "10 cases" not in summary


def _no_retrieval(case: object) -> dict:
    """A callable pipeline that retrieves nothing: faithfulness is unmeasured (no_context)."""
    return {"answer": "Please contact support for help with identity verification in the security portal.",
            "usage": {"input_tokens": 20, "output_tokens": 12}, "cost_usd": 0.0001}


@pytest.fixture(scope="module")
def noret_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("noret") / "noret"
    cases = labkit.load_cases(ROOT / "data" / "quick_lab.jsonl")
    return Path(labkit.run(cases, _no_retrieval, out, overrides={"progress": False}).path)


def test_unmeasured_faithfulness_is_shown_not_judged_not_unsupported(noret_run: Path,
                                                                     runs: dict[str, labkit.RunDir]) -> None:
    from labkit.views import decision

    sc = labkit.RunDir(noret_run).scores()
    assert set(sc["faithfulness_reason"]) == {"no_context"} and sc["faithfulness"].isna().all()
    st = decision.unsupported_table(noret_run)
    assert len(st.data) == 0
    cap = str(st.caption)
    assert "0 of 0 judged answers (n) hold a sentence" in cap
    assert "10 of 10 answers not judged (no context): their faithfulness is unmeasured, not 0" in cap
    diff = str(answers.flipped_diff({"baseline": runs["baseline"], "no retrieval": noret_run},
                                    {"flipped": [{"case_id": "ql-01", "from": "pass", "to": "fail",
                                                  "metric": "task_success_rate"}]}))
    side = diff[diff.index("<strong>no retrieval</strong>"):]
    assert "not judged (no context)" in side
    assert "not supported by the retrieved context" not in side and "<mark" not in side


def test_simulated_notice_comes_from_the_runs_manifests(runs: dict[str, labkit.RunDir], noret_run: Path,
                                                        two_case_runs: dict[str, Path]) -> None:
    from labkit.gate.bar import record_bar
    from labkit.views import decision

    both = verdicts.simulated_notice(runs["baseline"], runs["variant"])._repr_html_()
    assert "SIMULATED" in both and "baseline.yaml" in both and "variant.yaml" in both
    assert "sim-gen-large" in both and "sim-gen-small" in both
    real = verdicts.simulated_notice(noret_run)._repr_html_()
    assert "SIMULATED" not in real and "simulated model" not in real.replace("no simulated model", "")
    assert ".yaml" not in real and "_no_retrieval" in real
    assert "records no simulated model" in real
    mixed = verdicts.simulated_notice(runs["baseline"], noret_run)._repr_html_()
    assert "SIMULATED" in mixed and "baseline.yaml" in mixed and "variant.yaml" not in mixed
    assert "records no simulated model" in mixed
    # the quick lab's summary says "simulated" only of a run that is
    gate = QUICK_MIN_N
    bar = record_bar(gate, two_case_runs["dir"])
    assert "The model is simulated" in str(decision.decision_summary(gate.evaluate(two_case_runs["variant"]),
                                                                     gate.evaluate(two_case_runs["baseline"]), bar,
                                                                     two_case_runs["variant"]))
    noret_summary = str(decision.decision_summary(gate.evaluate(noret_run), gate.evaluate(noret_run), bar, noret_run))
    assert "simulated" not in noret_summary


def test_an_unmeasured_check_is_said_unmeasured_not_too_few(noret_run: Path) -> None:
    from labkit.gate.report import failure_text

    faith = next(c for c in QUICK_MIN_N.evaluate(noret_run).checks if c.metric == "faithfulness")
    assert faith.observed is None and faith.n == 0 and not faith.passed
    assert failure_text(faith) == "faithfulness >= 0.85: unmeasured on every case (10 unmeasured)"  # the gate's reason
