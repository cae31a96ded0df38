"""The local backend: cases on an asyncio loop in this process (:class:`CaseExecutor`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from labkit.cases import EvalCase
from labkit.runner.config import RunnerConfig
from labkit.runner.executor import CaseExecutor, CaseOutcome

if TYPE_CHECKING:
    from labkit.pipelines import LoadedPipeline

__all__ = ["run_cases", "run_coro", "run_local"]


def run_local(ex: CaseExecutor, todo: Sequence[EvalCase], done: Callable[[CaseOutcome], None], *,
              done_many: Callable[[list[CaseOutcome]], None] | None = None) -> None:
    """Run ``todo`` with ``ex``, calling ``done`` for each case as it is handed over (or
    ``done_many`` for the cases handed over together)."""
    run_coro(ex.run_many(todo, done, on_done_many=done_many))


def run_cases(
    cases: Sequence[EvalCase],
    pipeline: LoadedPipeline,
    config: RunnerConfig | None = None,
    *,
    run_id: str = "adhoc",
) -> list[CaseOutcome]:
    """Run cases in memory (no files): the outcomes in the order of ``cases``."""
    ex = CaseExecutor(pipeline, config or RunnerConfig(progress=False), run_id)
    got: dict[str, CaseOutcome] = {}

    def done(o: CaseOutcome) -> None:
        o.case = None  # keep outcomes small to ship (Dask)
        got[o.case_id] = o

    run_coro(ex.run_many(cases, done))
    return [got[c.id] for c in cases]


def run_coro(coro: Any) -> Any:
    """asyncio.run, also from inside a running loop (Jupyter): then in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["v"] = asyncio.run(coro)
        except BaseException as e:
            box["e"] = e

    t = threading.Thread(target=target, name="labkit-run", daemon=True)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box.get("v")
