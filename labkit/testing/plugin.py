"""The pytest plugin: a dataset as one test per case, run once through the runner.

Loaded through the ``pytest11`` entry point of labkit's ``pyproject.toml``. Options
(each also an ini setting, ``labkit_dataset`` ...)::

    --labkit-dataset PATH    cases (JSONL); a test asking for ``labkit_case`` is
                             parametrized with one test per case, ids = case ids
    --labkit-pipeline SPEC   pipeline config YAML or module:callable
    --labkit-gate PATH       gate YAML, given to the run and to the ``labkit_gate`` fixture

Fixtures: ``labkit_run`` (the session's RunDir: the whole dataset run once, scored, in a
temporary folder), ``labkit_result`` (the results line of the test's case),
``labkit_case`` (the EvalCase), ``labkit_gate`` (the gate path). Only tests that ask for
these fixtures are touched; the plugin imports labkit's heavy modules only when a run
is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from labkit.cases import Dataset, EvalCase
    from labkit.runs import RunDir

DATASET = pytest.StashKey["Dataset"]()
OPTIONS = (
    ("dataset", "PATH", "labkit eval cases (JSONL): one test per case for tests using labkit_case"),
    ("pipeline", "SPEC", "labkit pipeline (config YAML or module:callable) the cases run through"),
    ("gate", "PATH", "labkit gate YAML (recorded by the run; the labkit_gate fixture)"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labkit", "labkit: a dataset as tests, run once through a pipeline")
    for name, metavar, text in OPTIONS:
        group.addoption(f"--labkit-{name}", dest=f"labkit_{name}", metavar=metavar, default=None, help=text)
        parser.addini(f"labkit_{name}", text)


def _option(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(f"labkit_{name}") or config.getini(f"labkit_{name}")
    return str(value) if value else None


def _required(config: pytest.Config, name: str, who: str) -> str:
    value = _option(config, name)
    if value is None:
        pytest.fail(f"{who} needs --labkit-{name} (or labkit_{name} in the pytest ini settings)", pytrace=False)
    return value


def pytest_configure(config: pytest.Config) -> None:
    """Load the dataset up front: a bad file stops pytest with one line naming line and field."""
    path = _option(config, "dataset")
    if path is None:
        return
    from labkit.cases import load_cases
    from labkit.errors import LabkitError

    try:
        config.stash[DATASET] = load_cases(path)
    except (LabkitError, OSError) as e:
        raise pytest.UsageError(f"--labkit-dataset: {e}") from None


def _dataset(config: pytest.Config, who: str) -> Dataset:
    if DATASET not in config.stash:
        _required(config, "dataset", who)
    return config.stash[DATASET]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "labkit_case" not in metafunc.fixturenames:
        return
    cases = list(_dataset(metafunc.config, f"{metafunc.definition.nodeid} (labkit_case)"))
    metafunc.parametrize("labkit_case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def labkit_gate(pytestconfig: pytest.Config) -> str:
    """The gate YAML path given with --labkit-gate."""
    return _required(pytestconfig, "gate", "the labkit_gate fixture")


@pytest.fixture(scope="session")
def labkit_run(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """The dataset run once through the pipeline (scored) into a temporary run folder."""
    from labkit.errors import LabkitError
    from labkit.runner import run

    ds = _dataset(pytestconfig, "the labkit_run fixture")
    pipeline = _required(pytestconfig, "pipeline", "the labkit_run fixture")
    out = tmp_path_factory.mktemp("labkit") / "run"
    try:
        return run(ds, pipeline, out, gate_path=_option(pytestconfig, "gate"))
    except LabkitError as e:
        pytest.fail(f"labkit run failed: {e}", pytrace=False)


@pytest.fixture(scope="session")
def _labkit_results(labkit_run: RunDir) -> dict[str, dict[str, Any]]:
    return {r["case_id"]: r for r in labkit_run.results()}  # the last line of a case wins


@pytest.fixture
def labkit_result(
    request: pytest.FixtureRequest, labkit_case: EvalCase, _labkit_results: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The results line of this test's case (as results.jsonl holds it, redacted)."""
    line = _labkit_results.get(labkit_case.id)
    if line is None:
        pytest.fail(f"the run has no result for case {labkit_case.id}", pytrace=False)
    request.node.user_properties.append(("labkit_case_id", labkit_case.id))
    request.node.user_properties.append(("labkit_status", str(line.get("status"))))
    return line
