import asyncio
import sys
import types
from pathlib import Path

import pytest

from labkit.cases import EvalCase
from labkit.errors import ConfigError, PipelineError
from labkit.pipelines import config_hash, from_config, load_pipeline


def plain(case):
    return {"answer": case.question.upper()}


async def coro(case):
    await asyncio.sleep(0)
    return {"answer": "async"}


def test_plain_callable_and_import_path_are_pipelines():
    p = load_pipeline(plain)
    assert p(EvalCase("a", "hi")) == {"answer": "HI"} and not p.is_async
    q = load_pipeline("tests.test_pipelines:coro")
    assert q.is_async and q.config["callable"] == "tests.test_pipelines:coro"
    with pytest.raises(PipelineError):
        load_pipeline("tests.test_pipelines:nope")


def test_unknown_type_lists_known():
    with pytest.raises(ConfigError) as ei:
        from_config({"type": "magic"})
    assert "rag" in (ei.value.known or [])


def test_rag_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("type: rag\ncorpus: ../../data/corpus\ntop_k: two\n")
    with pytest.raises(ConfigError) as ei:
        load_pipeline(bad, corpus_dir="data/corpus")
    assert ei.value.field == "top_k" and str(bad) in str(ei.value)
    bad.write_text("type: rag\ntop_kk: 2\n")
    with pytest.raises(ConfigError, match="top_kk"):
        load_pipeline(bad, corpus_dir="data/corpus")
    bad.write_text("type: rag\n  top_k: [\n")
    with pytest.raises(ConfigError) as ei:
        load_pipeline(bad)
    assert ei.value.line is not None


def test_config_hash_ignores_runner_and_fallback():
    a = {"type": "rag", "top_k": 5}
    assert config_hash(a) == config_hash({**a, "runner": {"retries": 9}, "fallback": "x.yaml"})
    assert config_hash(a) != config_hash({**a, "top_k": 4})


def test_reference_pipeline_answers_cites_and_is_labelled_simulated():
    p = load_pipeline("data/pipelines/baseline.yaml")
    assert p.fallback is not None and p.fallback.name == "fallback"
    case = EvalCase("sec-001", "How do I reset an expired API key?")
    out = p(case)
    assert out == p(case)  # deterministic
    assert out["simulated"] is True and out["latency_source"] == "modelled"
    assert out["retrieved"][0]["source"] == "security-runbook"
    assert out["citations"] and all(f"[{c}]" in out["answer"] for c in out["citations"])
    assert set(out["citations"]) <= {r["id"] for r in out["retrieved"]}
    assert out["usage"]["input_tokens"] > out["usage"]["output_tokens"] > 0
    m = p.config["model"]
    expect = (out["usage"]["input_tokens"] * m["price_per_1k_input"]
              + out["usage"]["output_tokens"] * m["price_per_1k_output"]) / 1000
    assert out["cost_usd"] == pytest.approx(expect, rel=1e-6)


def test_reference_pipeline_tools_and_abstention():
    p = load_pipeline("data/pipelines/baseline.yaml")
    out = p(EvalCase("t", "Account u-17 cannot sign in, please escalate T-4821 now"))
    assert [(t["name"], t["args"]) for t in out["tool_calls"]] == [
        ("lookup_account", {"user_id": "u-17"}), ("escalate_ticket", {"ticket_id": "T-4821"})]
    esc = out["tool_calls"][1]
    assert esc["side_effect"] is True and esc["idempotency_key"] == p(EvalCase("t", "x T-4821 escalate"))[
        "tool_calls"][0]["idempotency_key"]  # stable per case and ticket, whatever the retry
    oos = p(EvalCase("o", "Write me a short poem about autumn leaves."))
    assert oos["citations"] == [] and "could not find" in oos["answer"]


def test_variant_differs_visibly():
    base = load_pipeline("data/pipelines/baseline.yaml")
    var = load_pipeline("data/pipelines/variant.yaml")
    assert base.config_hash != var.config_hash
    case = EvalCase("x", "How long are deleted workspaces kept before permanent deletion?")
    b, v = base(case), var(case)
    assert [r["id"] for r in v["retrieved"]] == [r["id"] for r in b["retrieved"]]  # same retrieval
    assert len(v["citations"]) <= 1 < len(b["answer"].split(". "))
    assert v["cost_usd"] < b["cost_usd"] and v["latency_ms"] < b["latency_ms"]


def test_config_hash_follows_the_corpus_content(tmp_path):
    """The cache and resume key on config_hash: another corpus must never be served old answers."""
    import shutil

    base = load_pipeline("data/pipelines/baseline.yaml")
    same = load_pipeline("data/pipelines/baseline.yaml", corpus_dir="data/corpus")
    assert same.config_hash == base.config_hash
    copy = tmp_path / "corpus"
    shutil.copytree("data/corpus", copy)
    assert load_pipeline("data/pipelines/baseline.yaml", corpus_dir=str(copy)).config_hash == base.config_hash
    doc = copy / "billing.md"
    doc.write_text(doc.read_text().replace("49 dollars", "59 dollars") + "\n## New\n\nA new section.\n")
    moved = load_pipeline("data/pipelines/baseline.yaml", corpus_dir=str(copy))
    assert moved.config_hash != base.config_hash
    assert moved.config["corpus"] == str(copy.resolve())  # the manifest records the corpus used


@pytest.mark.parametrize("price", ["-0.01", ".inf", ".nan"])
def test_rag_negative_or_non_finite_price_is_a_config_error(tmp_path, price):
    p = tmp_path / "p.yaml"
    p.write_text(f"type: rag\nmodel:\n  name: m\n  price_per_1k_output: {price}\n")
    with pytest.raises(ConfigError) as ei:
        load_pipeline(p, corpus_dir="data/corpus")
    assert ei.value.field == "model.price_per_1k_output" and str(p) in str(ei.value)


# ---- loading errors: one line naming the module or the files, never a traceback ----------------

SECRET = "sk-proj-abcdefghijklmnopqrstuvwx0123"


@pytest.mark.parametrize(("body", "want"), [
    ("import not_a_module_anywhere_xyz\n", "No module named 'not_a_module_anywhere_xyz'"),
    ("def broken(:\n", "SyntaxError"),
    (f"raise RuntimeError('bad key {SECRET}')\n", "RuntimeError: bad key [API_KEY]"),
    ("import sys\nsys.exit(4)\n", "SystemExit: 4"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
])
def test_a_pipeline_module_that_fails_to_import_is_one_redacted_line(tmp_path, monkeypatch, capsys, body, want):
    from labkit.cli import main

    mod = f"broken_pipe_{abs(hash(body)) % 10**8}"
    (tmp_path / f"{mod}.py").write_text(body + "def run(case):\n    return {'answer': 'x'}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PipelineError) as ei:
        load_pipeline(f"{mod}:run")
    msg = str(ei.value)
    assert mod in msg and want in msg and SECRET not in msg and "\n" not in msg
    ds = tmp_path / "ds.jsonl"
    ds.write_text('{"id": "a", "question": "q"}\n')
    code = main(["run", "--dataset", str(ds), "--pipeline", f"{mod}:run", "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and SECRET not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("chain", [["a"], ["a", "b"], ["a", "b", "c"]])
def test_a_fallback_chain_that_loops_is_a_config_error_naming_the_files(tmp_path, chain):
    for i, name in enumerate(chain):
        nxt = chain[(i + 1) % len(chain)]
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\ntype: rag\ncorpus: {Path('data/corpus').resolve()}\nfallback: {nxt}.yaml\n")
    with pytest.raises(ConfigError) as ei:
        load_pipeline(tmp_path / "a.yaml")
    msg = str(ei.value)
    assert "loop" in msg and ei.value.field == "fallback"
    assert all(f"{name}.yaml" in msg for name in chain)


def test_an_inline_fallback_that_refers_to_itself_is_a_config_error(tmp_path):
    p = tmp_path / "self.yaml"
    corpus = Path("data/corpus").resolve()
    p.write_text(f"type: rag\ncorpus: {corpus}\nfallback: &fb\n  type: rag\n  corpus: {corpus}\n  fallback: *fb\n")
    # (the one YAML loader refuses a value that holds itself, before any fallback is followed)
    with pytest.raises(ConfigError, match=r"self\.yaml:3: an alias refers to its own anchor"):
        load_pipeline(p)


def _import_path(tmp_path, monkeypatch, name, body):
    """A ``name:answer`` pipeline whose module file holds ``body``, imported afresh."""
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return load_pipeline(f"{name}:answer")


def test_the_config_hash_of_a_callable_covers_the_source_file_of_its_module(tmp_path, monkeypatch):
    v1 = _import_path(tmp_path, monkeypatch, "hashedpipe", 'def answer(case): return {"answer": "v1"}\n')
    same = _import_path(tmp_path, monkeypatch, "hashedpipe", 'def answer(case): return {"answer": "v1"}\n')
    assert same.config_hash == v1.config_hash and len(v1.config["source_sha256"]) == 64
    v2 = _import_path(tmp_path, monkeypatch, "hashedpipe", 'def answer(case): return {"answer": "v2"}\n')
    assert v2.config_hash != v1.config_hash
    assert load_pipeline(v2.fn).config_hash == v2.config_hash  # the callable itself: the same hash


def test_a_callable_whose_source_cannot_be_read_is_hashed_by_its_name_with_a_warning(monkeypatch):
    mod = types.ModuleType("sourceless")
    exec('def answer(case):\n    return {"answer": "x"}\n', mod.__dict__)
    monkeypatch.setitem(sys.modules, "sourceless", mod)
    with pytest.warns(UserWarning, match="sourceless:answer.*source"):
        p = load_pipeline("sourceless:answer")
    assert p.config["source_sha256"] is None
    with pytest.warns(UserWarning):
        assert load_pipeline("sourceless:answer").config_hash == p.config_hash
