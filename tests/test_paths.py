"""labkit.paths.refuse_overwriting_inputs: an output must not be one of the command's inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.errors import LabkitError, OutputError
from labkit.paths import refuse_overwriting_inputs


def test_an_output_that_is_an_input_is_refused_naming_the_flag_and_the_input(tmp_path: Path) -> None:
    ds = tmp_path / "ds.jsonl"
    ds.write_text("x\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(ds)
    for out in (ds, link, tmp_path / "." / "ds.jsonl"):
        with pytest.raises(OutputError) as e:
            refuse_overwriting_inputs(out, {"--dataset": ds}, flag="--out")
        assert isinstance(e.value, LabkitError)
        assert str(e.value).startswith(f"--out {out}") and f"--dataset {ds}" in str(e.value)
    refuse_overwriting_inputs(tmp_path / "new.jsonl", {"--dataset": ds, "--run": None}, flag="--out")


def test_a_folder_input_refuses_only_the_files_the_command_reads_from_it(tmp_path: Path) -> None:
    """A file of a corpus or run folder is refused when the command reads it, not because it
    lies in that folder: an output an earlier call wrote there is replaced the next time."""
    import os

    from labkit.corpus import corpus_files
    from labkit.runs import run_files

    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "doc.md").write_text("# Doc\n")
    (corpus / "sub" / "other.md").write_text("# Other\n")  # (the loader reads the top level only)
    (corpus / "new.jsonl").write_text("written by an earlier call\n")
    with pytest.raises(OutputError, match=r"--out .*doc\.md would overwrite a file of the input --corpus"):
        refuse_overwriting_inputs(corpus / "doc.md", {"--corpus": corpus_files(corpus)}, flag="--out")
    for out in (corpus / "new.jsonl", corpus / "sub" / "other.md"):
        refuse_overwriting_inputs(out, {"--corpus": corpus_files(corpus)}, flag="--out")
    refuse_overwriting_inputs(corpus / "doc.md", {"--corpus": corpus}, flag="--out")  # a folder alone: itself
    run = tmp_path / "run"
    run.mkdir()
    for name in ("results.jsonl", "traces.parquet", "feedback.jsonl", "ragas.jsonl"):
        (run / name).write_text("x\n")
    hard = tmp_path / "hard.jsonl"
    os.link(run / "results.jsonl", hard)
    for out in (run / "traces.parquet", run / "feedback.jsonl", run / "." / "results.jsonl", hard):
        with pytest.raises(OutputError, match=f"would overwrite a file of the input RUN_DIR {run}:"):
            refuse_overwriting_inputs(out, {"RUN_DIR": [run_files(tmp_path / "x"), run_files(run)]}, flag="--out")
    refuse_overwriting_inputs(run / "ragas.jsonl", {"RUN_DIR": [run_files(run)], "--dataset": None}, flag="--out")


def test_append_line_keeps_a_whole_last_line_without_newline_and_cuts_a_torn_one(tmp_path: Path) -> None:
    import json

    from labkit.paths import append_line

    f = tmp_path / "reviews.jsonl"
    f.write_text('{"id": 1}\n{"id": 2}')  # written by hand: the last record lacks its newline
    append_line(f, {"id": 3})
    assert [json.loads(x) for x in f.read_text().splitlines()] == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert f.read_text().endswith("\n")
    f.write_text('{"id": 1}\n{"id": 2, "no')  # a write cut by a kill: the fragment goes
    append_line(f, {"id": 3})
    assert f.read_text() == '{"id": 1}\n{"id": 3}\n'
    f.write_text('{"id": 9}')  # the only line, whole
    append_line(f, {"id": 3})
    assert f.read_text() == '{"id": 9}\n{"id": 3}\n'


def test_two_outputs_that_are_one_file_are_refused_naming_both_flags(tmp_path: Path) -> None:
    """The second of two writes to one file replaces the first: the same path, a path not there yet
    reached two ways, a symlink and a hard link are each one file."""
    import os

    from labkit.paths import refuse_shared_outputs

    a = tmp_path / "a.xml"
    (tmp_path / "sub").mkdir()
    for other in (a, tmp_path / "sub" / ".." / "a.xml"):  # (a is not there yet)
        with pytest.raises(OutputError, match=r"^--markdown .* is the --junit file too"):
            refuse_shared_outputs({"--junit": a, "--markdown": other})
    a.write_text("")
    (tmp_path / "soft").symlink_to(a)
    os.link(a, tmp_path / "hard")
    for other in (tmp_path / "soft", tmp_path / "hard"):
        with pytest.raises(OutputError):
            refuse_shared_outputs({"--junit": a, "--markdown": other})
    refuse_shared_outputs({"--junit": a, "--markdown": tmp_path / "b.md", "--json": None})
