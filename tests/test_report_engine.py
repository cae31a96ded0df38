"""The report engine: execution, failures, retries, timeouts, params, offline HTML, index."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import nbformat
import pytest

from labkit.display import VERDICT_MIME, Verdict
from labkit.errors import ConfigError, ReportFailed
from labkit.report import engine, params
from labkit.report.engine import build_reports, verdict_of
from labkit.report.export import export_html
from labkit.report.results import ReportIndex

pytestmark = pytest.mark.slow


def _nb(path: Path, *cells: tuple[str, str, list[str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src, tags in cells:
        c = nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
        if tags:
            c.metadata["tags"] = tags
        nb.cells.append(c)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


PARAMS = ("code", 'label: str = "x"  # a label\ncount: int = 1  # how many', ["parameters"])


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReportIndex]:
    """Three notebooks: one publishes a verdict and a plot, one fails, one is plain; built once."""
    root = tmp_path_factory.mktemp("proj")
    nbs = root / "notebooks"
    _nb(nbs / "00_good.ipynb",
        ("md", "# Good report\n\nSummary line.", []),
        PARAMS,
        ("code", "SECRET_CODE_TEXT = 'do-not-show'\nprint('hello', label, count)", []),
        ("code", "print('tagged-away')", ["remove-cell"]),
        ("code", "print('output-stays')", ["remove-input"]),
        ("code", "print('output-gone')", ["remove-output"]),
        ("code", "import matplotlib.pyplot as plt\n"
                 "fig, ax = plt.subplots()\nax.plot([1, 2, 3])\nplt.show()", []),
        ("code", "from labkit.display import Verdict\nVerdict('pass', 'SHIP <it>', 'all checks pass')", []))
    _nb(nbs / "01_broken.ipynb",
        ("md", "# Broken report", []),
        ("code", "x = 1", []),
        ("code", "raise ValueError('boom in cell')", []),
        ("code", "print('never')", []))
    _nb(nbs / "02_plain.ipynb",
        ("md", "# Plain report", []),
        PARAMS,
        ("code", "print('plain', label)", []))
    (nbs / "notes.ipynb").write_text("{}")  # not NN_*: never run
    idx = build_reports(notebooks_dir=nbs, out_dir=root / "out",
                        params={"all": {"label": "from-all"}, "02_plain": {"label": "from-section"}},
                        timeout_s=120)
    return root, idx


def test_every_notebook_runs_and_failure_is_named(three: tuple[Path, ReportIndex]) -> None:
    root, idx = three
    names = [e.name for e in idx.entries]
    assert names == ["00_good", "01_broken", "02_plain"]
    assert not idx.ok
    [fail] = idx.failures
    assert fail.notebook == "01_broken"
    assert fail.error == "ValueError"
    assert "boom in cell" in fail.message
    assert fail.cell_index is not None
    assert "raise ValueError" in fail.cell_source
    text = str(fail)
    assert "01_broken" in text and "cell" in text and "ValueError" in text
    with pytest.raises(ReportFailed, match="01_broken"):
        idx.raise_for_failures()
    # the others are intact
    good = {e.name: e for e in idx.entries}
    assert good["00_good"].status == "ok" and good["02_plain"].status == "ok"
    assert (root / "out" / "00_good.html").is_file()
    assert (root / "out" / "02_plain.html").is_file()
    assert (root / "out" / "executed" / "00_good.ipynb").is_file()
    assert idx.wall_s > 0


def test_verdict_read_back_from_outputs(three: tuple[Path, ReportIndex]) -> None:
    _, idx = three
    e = {e.name: e for e in idx.entries}
    assert e["00_good"].verdict == Verdict("pass", "SHIP <it>", "all checks pass")
    assert e["02_plain"].verdict is None
    assert e["00_good"].title == "Good report"


def test_parameters_all_section_and_notebook_section(three: tuple[Path, ReportIndex]) -> None:
    root, _ = three
    good = (root / "out" / "00_good.html").read_text()
    plain = (root / "out" / "02_plain.html").read_text()
    assert "hello from-all 1" in good
    assert "plain from-section" in plain


def test_html_is_offline_and_codeless(three: tuple[Path, ReportIndex]) -> None:
    root, _ = three
    html = (root / "out" / "00_good.html").read_text()
    outside_data = re.sub(r"data:[a-z/+.-]+;base64,[A-Za-z0-9+/=]+", "", html)
    assert "http" not in outside_data.lower()
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    # no MathJax at all; labkit's outputs only carry the class that tells a MathJax to skip them
    assert "mathjax" not in html.lower().replace("mathjax_ignore", "") and "require" not in html.lower()
    assert "SECRET_CODE_TEXT" not in html  # no code
    assert "In&nbsp;[" not in html and "Out[" not in html  # no prompts
    assert "tagged-away" not in html
    assert "output-stays" in html and "print('output-stays')" not in html
    assert "output-gone" not in html
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert imgs and all(src.startswith("data:image/png;base64,") for src in imgs)
    assert "&lt;it&gt;" in html  # the verdict title is escaped
    # the failed notebook's partial report carries a failure banner
    broken = (root / "out" / "01_broken.html").read_text()
    assert "This notebook failed" in broken and "boom in cell" in broken


def test_index_links_every_report_with_its_verdict(three: tuple[Path, ReportIndex]) -> None:
    root, idx = three
    index = idx.index_html.read_text()
    assert idx.index_html == (root / "out" / "index.html").resolve()
    for name in ("00_good", "01_broken", "02_plain"):
        assert f"href='{name}.html'" in index
    assert "SHIP &lt;it&gt;" in index
    assert "ERROR" in index and "boom in cell" in index
    assert "http" not in index.lower()
    rec = json.loads((root / "out" / "00_good.report.json").read_text())
    assert rec["verdict"]["status"] == "pass"


def test_only_keeps_earlier_reports_in_index(three: tuple[Path, ReportIndex], tmp_path: Path) -> None:
    root, _ = three
    idx = build_reports(notebooks_dir=root / "notebooks", out_dir=root / "out", only=["02"], timeout_s=120)
    assert [e.name for e in idx.entries] == ["02_plain"]
    index = idx.index_html.read_text()
    assert "href='00_good.html'" in index and "SHIP &lt;it&gt;" in index


def test_unknown_only_name_lists_known(three: tuple[Path, ReportIndex]) -> None:
    root, _ = three
    with pytest.raises(ConfigError) as ei:
        build_reports(notebooks_dir=root / "notebooks", out_dir=root / "o2", only=["99_nope"])
    assert "00_good" in str(ei.value) and ei.value.known is not None


def test_unknown_parameter_in_section_is_config_error(three: tuple[Path, ReportIndex]) -> None:
    root, _ = three
    with pytest.raises(ConfigError, match="nope"):
        build_reports(notebooks_dir=root / "notebooks", out_dir=root / "o3",
                      params={"02_plain": {"nope": 1}}, only=["02"])


def test_params_resolution_and_batch_defaults() -> None:
    p = Path("03_x.ipynb")
    declared = {"a": {}, "interactive": {}}
    assert params.params_for(p, None, declared) == {"interactive": False}
    assert params.params_for(p, {"a": 1, "zzz": 2}, declared) == {"interactive": False, "a": 1}
    assert params.params_for(p, {"all": {"a": 1}, "03": {"interactive": True}}, declared) == {
        "interactive": True, "a": 1}
    assert params.params_for(Path("00_y.ipynb"), {"a": 5}, {"a": {}}) == {"a": 5}


def test_load_params_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("all:\n  seed: 3\n02_baseline_vs_variant:\n  gate: g.yaml\n")
    assert params.load_params(f) == {"all": {"seed": 3}, "02_baseline_vs_variant": {"gate": "g.yaml"}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("all: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        params.load_params(bad)
    with pytest.raises(ConfigError, match="not found"):
        params.load_params(tmp_path / "missing.yaml")


def test_a_section_named_by_a_bare_number_is_a_config_error_saying_to_quote_it(tmp_path: Path) -> None:
    """YAML reads ``02:`` as the number 2: a section key that is no string fails at load (exit 2),
    naming the file, the line and the key and saying to quote it, not a TypeError in the build."""
    f = tmp_path / "p.yaml"
    f.write_text("all:\n  seed: 1\n02:\n  seed: 1\n")
    with pytest.raises(ConfigError) as ei:
        params.load_params(f)
    msg = str(ei.value)
    assert "p.yaml:3" in msg and "'02'" in msg and "quote" in msg and ei.value.field == "2"
    for given in ({2: {"seed": 1}}, {True: {"seed": 1}}):  # (given to the API, not read from a file)
        with pytest.raises(ConfigError, match="quote"):
            params.params_for(Path("02_x.ipynb"), given, {"seed": {}})
        with pytest.raises(ConfigError, match="quote"):
            params.check_shared_names(given, {Path("02_x.ipynb"): {"seed": {}}})
    f.write_text("'02':\n  seed: 1\n")
    assert params.params_for(Path("02_x.ipynb"), params.load_params(f), {"seed": {}}) == {"seed": 1}


def test_a_section_that_is_not_a_mapping_is_a_config_error_naming_it(tmp_path: Path) -> None:
    """``00_quick_lab: [1]`` was ignored without a word: the notebook ran on its defaults."""
    f = tmp_path / "p.yaml"
    f.write_text("all:\n  seed: 1\n00_quick_lab: [1]\n")
    with pytest.raises(ConfigError) as ei:
        params.load_params(f)
    assert "p.yaml:3" in str(ei.value) and ei.value.field == "00_quick_lab" and "mapping" in str(ei.value)
    with pytest.raises(ConfigError, match="'all'"):
        params.params_for(Path("00_quick_lab.ipynb"), {"all": 1}, {"seed": {}})
    f.write_text("all:\n  seed: 1\n00_quick_lab:\n")  # an empty section: nothing given
    assert params.params_for(Path("00_quick_lab.ipynb"), params.load_params(f), {"seed": {}}) == {"seed": 1}


def test_retry_once_when_kernel_dies_on_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient.exceptions import DeadKernelError

    nbs = tmp_path / "notebooks"
    _nb(nbs / "00_one.ipynb", ("md", "# One", []), ("code", "print('ran')", []))
    real = engine._execute
    calls: list[int] = []

    def flaky(*a: object, **k: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            return None, DeadKernelError("Kernel died before replying to kernel_info"), None
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_execute", flaky)
    idx = build_reports(notebooks_dir=nbs, out_dir=tmp_path / "out", timeout_s=120)
    assert idx.ok and len(calls) == 2
    assert idx.entries[0].attempts == 2


def test_no_retry_when_a_cell_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbs = tmp_path / "notebooks"
    _nb(nbs / "00_bad.ipynb", ("code", "1/0", []))
    idx = build_reports(notebooks_dir=nbs, out_dir=tmp_path / "out", timeout_s=120)
    assert idx.entries[0].attempts == 1
    assert idx.failures[0].error == "ZeroDivisionError"


def test_per_notebook_timeout(tmp_path: Path) -> None:
    nbs = tmp_path / "notebooks"
    _nb(nbs / "00_slow.ipynb", ("md", "# Slow", []), ("code", "x = 1", []),
        ("code", "import time\ntime.sleep(60)", []))
    idx = build_reports(notebooks_dir=nbs, out_dir=tmp_path / "out", timeout_s=5)
    [fail] = idx.failures
    assert fail.error == "Timeout"
    assert "time.sleep(60)" in fail.cell_source
    assert idx.entries[0].seconds < 40


def test_kernel_is_the_running_interpreter(tmp_path: Path) -> None:
    import sys

    nbs = tmp_path / "notebooks"
    _nb(nbs / "00_exe.ipynb", ("code", "import sys\nprint('EXE=' + sys.executable)", []))
    # a kernelspec name that does not exist must not matter
    nb = nbformat.read(str(nbs / "00_exe.ipynb"), as_version=4)
    nb.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "x", "language": "python"}
    nbformat.write(nb, str(nbs / "00_exe.ipynb"))
    idx = build_reports(notebooks_dir=nbs, out_dir=tmp_path / "out", timeout_s=120)
    assert idx.ok, idx.failures
    assert f"EXE={sys.executable}" in (tmp_path / "out" / "00_exe.html").read_text()


def test_verdict_of_and_export(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    out = nbformat.v4.new_output("display_data", data={"text/html": "<b>x</b>",
                                                        VERDICT_MIME: {"status": "warn", "title": "T"}})
    nb.cells.append(nbformat.v4.new_code_cell("x", outputs=[out]))
    assert verdict_of(nb) == Verdict("warn", "T", "")
    path = export_html(nb, tmp_path / "r.html")
    assert "<b>x</b>" in path.read_text()
    with pytest.raises(ConfigError):
        Verdict("maybe", "x")


def test_cli_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.commands import report as cmd

    nbs = tmp_path / "notebooks"
    _nb(nbs / "00_ok.ipynb", ("md", "# Ok", []), ("code", "print(1)", []))
    _nb(nbs / "01_bad.ipynb", ("code", "raise KeyError('kaput')", []))
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["report", "--notebooks", str(nbs), "--out", str(tmp_path / "out"), "--only", "00"])
    assert args.handler(args) == 0
    assert "wall time" in capsys.readouterr().out
    args = parser.parse_args(["report", "--notebooks", str(nbs), "--out", str(tmp_path / "out")])
    assert args.handler(args) == 1
    err = capsys.readouterr().err
    assert "01_bad" in err and "KeyError" in err and "cell" in err
    args = parser.parse_args(["report", "--notebooks", str(nbs), "--timeout", "0"])
    with pytest.raises(ConfigError):
        args.handler(args)


def test_fail_on_verdict_gates_a_ci_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.commands import report as cmd

    nbs = tmp_path / "notebooks"
    show = "from labkit.display import Verdict\nVerdict({status!r}, 'gate verdict')"
    _nb(nbs / "00_ship.ipynb", ("code", show.format(status="pass"), []))
    _nb(nbs / "01_noship.ipynb", ("code", show.format(status="fail"), []))
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    base = ["report", "--notebooks", str(nbs), "--out", str(tmp_path / "out")]
    assert parser.parse_args(base).handler(parser.parse_args(base)) == 0  # a FAIL verdict is a report
    args = parser.parse_args([*base, "--fail-on-verdict"])
    assert args.handler(args) == 1
    assert "verdict FAIL in 01_noship" in capsys.readouterr().err
    args = parser.parse_args([*base, "--only", "00", "--fail-on-verdict"])
    assert args.handler(args) == 0


def test_fail_on_verdict_names_the_notebooks_that_published_none(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A notebook that published no verdict passed ``--fail-on-verdict`` without a word: the CI log
    must say which notebooks it judged nothing of."""
    from labkit.commands import report as cmd

    nbs = tmp_path / "notebooks"
    _nb(nbs / "00_ship.ipynb", ("code", "from labkit.display import Verdict\nVerdict('pass', 'gate verdict')", []))
    _nb(nbs / "01_silent.ipynb", ("code", "print('a table')", []))
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["report", "--notebooks", str(nbs), "--out", str(tmp_path / "out"), "--fail-on-verdict"])
    assert args.handler(args) == 0
    err = capsys.readouterr().err
    assert "no verdict published by 01_silent" in err and "00_ship" not in err, err


def test_import_labkit_report_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, labkit.report, labkit.report.engine, labkit.views.tables, labkit.views.charts, labkit.views.widgets, labkit.views.traces, labkit.views.readiness, labkit.build\n"
            "heavy = [m for m in ('papermill', 'nbconvert', 'matplotlib', 'ipywidgets', 'pandas') "
            "if m in sys.modules]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_parameter_typos_and_types_fail_before_any_kernel(tmp_path: Path) -> None:
    nbs = tmp_path / "notebooks"
    _nb(nbs / "00_a.ipynb", PARAMS, ("code", "print(label * count)", []))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="no notebook declares 'cuont'") as ei:
        build_reports(notebooks_dir=nbs, out_dir=out, params={"all": {"cuont": 2}})
    assert "count" in (ei.value.known or [])
    with pytest.raises(ConfigError, match=r"declares count: int, got '2'"):
        build_reports(notebooks_dir=nbs, out_dir=out, params={"00_a": {"count": "2"}})
    with pytest.raises(ConfigError, match="declares label: str"):
        build_reports(notebooks_dir=nbs, out_dir=out, params={"label": 5})
    assert not list(out.glob("*.html"))  # nothing ran
    idx = build_reports(notebooks_dir=nbs, out_dir=out, params={"all": {"count": 2}, "00_a": {"label": "y"}})
    assert idx.ok


def test_a_section_named_for_no_notebook_is_a_config_error_listing_them(tmp_path: Path) -> None:
    """A section with a typo in its notebook's name (``02_baseline_vs_varient``) was ignored
    without a word, and the notebook ran on its defaults: it is a ConfigError naming the section
    and the notebooks there are, before anything runs."""
    from labkit.report.engine import build_reports

    given = {"02_baseline_vs_varient": {"seed": 1}}
    with pytest.raises(ConfigError) as ei:
        build_reports(out_dir=tmp_path / "out", params=given, only=["00"])
    assert ei.value.field == "02_baseline_vs_varient" and "02_baseline_vs_variant" in str(ei.value), str(ei.value)
    assert not (tmp_path / "out").exists()


def test_a_secret_parameter_reaches_no_file_not_even_while_the_notebook_runs(tmp_path: Path) -> None:
    """The kept notebook held a parameter's secret raw in its metadata (papermill's record of the
    parameters), and the notebook under way was written raw after every cell: a cell that looks at
    every file under the output folder while it runs finds none holding it, and the kept notebook,
    the HTML and the record hold it nowhere, also when the notebook fails."""
    nbs = tmp_path / "notebooks"
    scan = ("code", "import pathlib\nmark = 'PLANTED' + 'param'\n"
                    "hits = [p.name for p in pathlib.Path(OUT).rglob('*') if p.is_file() and mark in p.read_text("
                    "errors='ignore')]\nassert not hits, hits", [])
    params = ("code", 'reviewer: str = "x"  # who reviews\nOUT: str = "."  # the output folder', ["parameters"])
    _nb(nbs / "00_ok.ipynb", ("md", "# Ok", []), params, ("code", "print(len(reviewer))", []), scan)
    _nb(nbs / "01_fails.ipynb", ("md", "# Fails", []), params, scan, ("code", "raise ValueError(reviewer)", []))
    out = tmp_path / "out"
    secret = "sk-proj-PLANTEDparam0123456789abcdefXYZ"
    idx = build_reports(notebooks_dir=nbs, out_dir=out, params={"reviewer": secret, "OUT": str(out)}, timeout_s=120)
    assert [e.status for e in idx.entries] == ["ok", "failed"], [e.failure for e in idx.entries]
    assert idx.failures[0].error == "ValueError"  # (the scan passed in both: the raise came after it)
    held = [p.name for p in out.rglob("*") if p.is_file() and "PLANTEDparam" in p.read_text(errors="ignore")]
    assert held == [], held
