"""docs/metrics.md "Adding a metric": its worked example is run here as written, so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from labkit.metrics import METRICS

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def _example() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Adding a metric", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section holds one worked example"
    return blocks[0]


def test_adding_a_metric_example_runs_as_documented():
    code = _example()
    assert "register_metric(" in code and "score_cases(" in code and "assert " in code
    before = dict(METRICS)
    namespace: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # its own asserts check the scores
    assert "short_answer" in namespace and callable(namespace["short_answer"])
    assert before == METRICS  # the example removes what it added
