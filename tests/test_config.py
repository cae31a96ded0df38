"""The one YAML reader of every config: duplicate keys and NaN are errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config import read_yaml, read_yaml_text
from labkit.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_duplicate_top_level_key_names_file_line_and_key(tmp_path: Path) -> None:
    p = _write(tmp_path, "checks:\n  - {metric: faithfulness, op: '>=', threshold: 0.85}\n"
                         "name: g\nchecks: []\n")
    with pytest.raises(ConfigError) as ei:
        read_yaml(p)
    e = ei.value
    assert e.path == str(p) and e.line == 4 and e.field == "checks"
    assert "duplicate key" in str(e) and "first on line 1" in str(e)


def test_duplicate_nested_key_in_a_flow_mapping(tmp_path: Path) -> None:
    p = _write(tmp_path, "model:\n  name: a\n  price_per_1k_input: 0.1\n  price_per_1k_input: 0.0\n")
    with pytest.raises(ConfigError) as ei:
        read_yaml(p)
    assert ei.value.line == 4 and ei.value.field == "model.price_per_1k_input"


def test_duplicate_key_on_one_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "slos:\n  - {name: a, kind: latency, name: b}\n")
    with pytest.raises(ConfigError) as ei:
        read_yaml(p)
    assert ei.value.line == 2 and ei.value.field == "slos[0].name"


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    p = _write(tmp_path, "base: &b {top_k: 5, seed: 0}\nvariant:\n  <<: *b\n  top_k: 3\n")
    assert read_yaml(p)["variant"] == {"top_k": 3, "seed": 0}


@pytest.mark.parametrize("lit", [".nan", ".NaN", ".NAN"])
def test_nan_is_an_error_with_line(tmp_path: Path, lit: str) -> None:
    p = _write(tmp_path, f"name: x\nthreshold: {lit}\n")
    with pytest.raises(ConfigError) as ei:
        read_yaml_text(p)
    assert ei.value.line == 2 and ei.value.field == "threshold" and "NaN" in str(ei.value)


def test_gate_with_a_second_checks_section_is_refused(tmp_path: Path) -> None:
    from labkit.gate import Gate

    p = _write(tmp_path, "version: 1\nchecks:\n  - {metric: faithfulness, op: '>=', threshold: 0.85}\n"
                         "checks:\n  - {metric: faithfulness, op: '>=', threshold: 0.0}\n")
    with pytest.raises(ConfigError) as ei:
        Gate.load(p)
    assert ei.value.line == 4 and ei.value.field == "checks"


def test_an_integer_beyond_64_bits_is_an_error_with_line_and_field(tmp_path: Path) -> None:
    """A 400-digit threshold ended in ``OverflowError: int too large to convert to float`` (a
    traceback, and ``labkit gate`` exited 1, read by CI as an ordinary FAIL); a huge retries count
    was taken as it was. Every config file is read by one loader: refused there, at its line."""
    big = "1" + "0" * 400
    p = tmp_path / "gate.yaml"
    p.write_text(f"checks:\n  - {{metric: latency_p95_ms, op: '<=', threshold: {big}}}\n")
    with pytest.raises(ConfigError) as ei:
        read_yaml(p)
    assert (ei.value.line, ei.value.field) == (2, "checks[0].threshold") and "64 bits" in str(ei.value), ei.value
    assert read_yaml_text(_write(tmp_path, "a: 9223372036854775807\nb: -9223372036854775808\n"))[0] == {
        "a": 2**63 - 1, "b": -(2**63)}


@pytest.mark.parametrize("argv", [
    ["gate", "--config", "{cfg}", "{run}", "--thresholds-only"],
    ["run", "--dataset", "data/quick_lab.jsonl", "--pipeline", "{cfg}", "--out", "{out}", "--quiet"],
])
def test_a_huge_number_in_a_config_is_a_one_line_error_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              argv: list[str]) -> None:
    from labkit.cli import main

    big = "1" + "0" * 400
    cfg = tmp_path / "cfg.yaml"
    if argv[0] == "gate":
        cfg.write_text(f"checks:\n  - {{metric: latency_p95_ms, op: '<=', threshold: {big}}}\n")
    else:
        cfg = tmp_path / "pipe.yaml"  # (beside it, the fallback it names)
        cfg.write_text(Path("data/pipelines/baseline.yaml").read_text().replace("timeout_s: 30", f"timeout_s: {big}")
                       .replace("fallback: fallback.yaml", "fallback: null")
                       .replace("corpus: ../corpus", f"corpus: {Path('data/corpus').resolve()}"))
    run = tmp_path / "run"
    run.mkdir()
    filled = [a.format(cfg=cfg, run=run, out=tmp_path / "out") for a in argv]
    assert main(filled) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "64 bits" in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_document_nested_past_the_limit_is_an_error_with_its_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``checks: [[[...]]]`` 3,000 deep: a RecursionError traceback from the YAML composer, exit 1
    (read by CI as an ordinary FAIL). Refused at its line past 200 levels, as a JSON line is."""
    from labkit.cli import main

    p = _write(tmp_path, "version: 1\nname: g\nchecks: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ConfigError, match=r"nested more than 200 levels") as e:
        read_yaml_text(p)
    assert e.value.line == 3
    assert main(["gate", "--config", str(p), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nested more than 200 levels" in err and "Traceback" not in err and err.count("\n") == 1, err
    assert read_yaml_text(_write(tmp_path, "a: " + "[" * 150 + "]" * 150 + "\n"))[0]["a"]  # (deep, not too deep)


def test_aliases_that_expand_a_document_past_what_it_holds_are_refused(tmp_path: Path) -> None:
    """Seven levels of nine aliases (a 420-byte file) expanded to a 34.7 MB dataset on import. An
    anchor reused as configs reuse them (defaults merged into each check) loads as before."""
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    p = _write(tmp_path, "\n".join(levels) + "\ntests:\n  - vars: {question: hi}\n    metadata: {x: *g}\n")
    with pytest.raises(ConfigError, match=r"aliases expand"):
        read_yaml_text(p)
    with pytest.raises(ConfigError, match=r"c\.yaml:1: an alias refers to its own anchor"):
        read_yaml_text(_write(tmp_path, "a: &a [1, *a]\n"))
    checks = "".join(f"  - {{<<: *d, metric: m{i}}}\n" for i in range(200))
    data, _ = read_yaml_text(_write(tmp_path, "defaults: &d {op: '>=', threshold: 0.5, min_n: 10}\nchecks:\n" + checks))
    assert len(data["checks"]) == 200 and data["checks"][7] == {"op": ">=", "threshold": 0.5, "min_n": 10,
                                                               "metric": "m7"}
