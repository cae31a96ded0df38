"""The one exception tree: every error labkit raises on purpose derives from LabkitError and is
declared in labkit.errors (modules that raise it import it from there)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from labkit import errors
from labkit.cli import main
from labkit.errors import LabkitError

PACKAGE = Path(errors.__file__).parent

# Exceptions that are control flow inside one module, not errors a user sees.
INTERNAL = {"_StrictYAMLError", "_Raised", "_Refused", "_TooDeep", "StrictJSONError", "PipelineThreadsStuck",
            "PipelineAbandoned"}


def _exception_classes() -> list[tuple[str, str]]:
    """(module path, class name) of every class in labkit/ that derives from an exception."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception", "Failed", "Locked", "Timeout", "Limited",
                                   "Response", "BaseException")) for b in bases):
                    found.append((str(path.relative_to(PACKAGE)), node.name))
    return found


def test_every_public_exception_is_declared_in_errors() -> None:
    outside = [(p, n) for p, n in _exception_classes() if p != "errors.py" and n not in INTERNAL]
    assert outside == []


@pytest.mark.parametrize("name", ["EndpointError", "RetryableError", "EndpointTimeout", "RateLimited",
                                  "ServerError", "ClientHTTPError", "MalformedResponse", "ResultError",
                                  "QueryError", "ReportFailed", "JudgeReplyError", "RunLocked",
                                  "ExportFailed", "RunDirError", "CompareError", "JudgeRefused"])
def test_every_error_is_a_labkit_error(name: str) -> None:
    cls = getattr(errors, name)
    assert inspect.isclass(cls) and issubclass(cls, LabkitError)


@pytest.mark.parametrize(("module", "name"), [
    ("labkit.openai_compat", "EndpointError"), ("labkit.openai_compat", "RateLimited"),
    ("labkit.resultline", "ResultError"), ("labkit.judges", "JudgeReplyError"),
    ("labkit.trace.otel", "ExportFailed"),
])
def test_raising_modules_use_the_one_class(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_no_bare_labkit_error_is_raised() -> None:
    bare = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "raise LabkitError(" in line:
                bare.append(f"{path.relative_to(PACKAGE)}:{i}")
    assert bare == []


def test_cli_prints_an_endpoint_error_on_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    def boom(args: object) -> int:
        raise errors.ClientHTTPError("HTTP 401 from http://127.0.0.1:9/v1", status=401)

    ns = argparse.Namespace(handler=boom, command="compare")
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", lambda self, argv=None: ns)
    assert main(["compare", "a", "b"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["labkit: error: HTTP 401 from http://127.0.0.1:9/v1"]


def test_compare_of_a_missing_run_is_a_run_dir_error(tmp_path: Path) -> None:
    from labkit.compare import compare_runs

    with pytest.raises(errors.RunDirError, match="not a run directory"):
        compare_runs(tmp_path / "nope", tmp_path / "nope2")


def test_a_labkit_error_crosses_a_process_boundary_whole() -> None:
    """Scoring reads results.jsonl in worker processes: an error raised there reaches the parent
    (pickled) as the same error, fields and message, not as a broken worker pool."""
    import pickle

    from labkit.errors import ConfigError, DatasetError, Problem, RunLocked

    for err in (DatasetError("r.jsonl", [Problem(7, None, "not UTF-8 text: invalid start byte")]),
                ConfigError("must be a number", path="gate.yaml", line=3, field="threshold", known=["a"]),
                RunLocked("/tmp/run", 123)):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err) and vars(back) == vars(err)


def test_an_error_message_is_redacted_before_it_is_printed(tmp_path, capsys):
    """An error quotes the bad value it names (a field, a cell): in a CI log that is a file on a
    disk too, so it goes through the trace redaction like everything labkit writes."""
    from labkit.cli import main

    key = "sk-proj-PLANTEDabcdefghijklmnop0123"
    one = tmp_path / "col.csv"
    one.write_text(f"Question,Answer,Lat {key}\nq1,a,-1\n")
    two = tmp_path / "cell.csv"
    two.write_text("Question,Answer,Lat\nq1,a,password=Hunt3rPassw0rd jane.doe@example.com\nq2,b,-2\n")
    for p, lat in ((one, f"Lat {key}"), (two, "Lat")):
        cmd = ["import", "csv", str(p), "--map", f"question=Question,answer=Answer,latency_ms={lat}",
               "--out", str(tmp_path / f"o-{p.stem}")]
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert p.name in err and "line 2" in err, err
        assert not [s for s in (key, "Hunt3rPassw0rd", "jane.doe@example.com") if s in err], err
