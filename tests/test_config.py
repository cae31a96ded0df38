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
