"""labkit.commands.traces: what a trace query prints is held to what a run may write."""

from __future__ import annotations

import pandas as pd

from labkit.commands.traces import _redacted


def test_a_column_named_by_a_secret_is_redacted_and_keeps_its_values() -> None:
    """A PIVOT names columns by the values it spreads: a secret there printed as the header, and
    the column's values came back empty."""
    key = "sk-proj-PLANTEDabcdefghijklmnop0123"
    df = pd.DataFrame({"trace_id": ["t1", "t2"], key: ["ok", "mail jane.doe@example.com"], "n": [1, 2],
                       "AKIAPLANTED123456789": ["x", "y"], "AKIAPLANTED123456780": ["z", "w"]})
    out = _redacted(df)
    names = [str(c) for c in out.columns]
    assert not [n for n in names if "PLANTED" in n] and len(set(names)) == 5, names
    assert out.iloc[:, 1].tolist() == ["ok", "mail [EMAIL]"] and out["n"].tolist() == [1, 2]
    assert out.iloc[:, 3].tolist() == ["x", "y"] and out["trace_id"].tolist() == ["t1", "t2"]
