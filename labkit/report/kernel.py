"""The kernel a report notebook runs in: always the running interpreter (no kernelspec lookup),
its output logged to a file, killed by pid; and whether a failure was the kernel dying on start."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from labkit.paths import owner_only


def kernel_manager_class(on_start: Any = None, log_path: Path | None = None) -> type:
    """A kernel manager that always launches ``sys.executable -m ipykernel_launcher``.

    It never consults installed kernelspecs, so it works in a virtual
    environment whatever ``python3`` kernel (or none) Jupyter would find.
    """
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    spec = KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name=f"labkit ({sys.executable})",
        language="python",
        metadata={},
    )

    class RunningInterpreterKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            return spec

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if log_path is not None:
                # The kernel's own stdout/stderr (start-up chatter, crashes) go to a log file.
                log_path.parent.mkdir(parents=True, exist_ok=True)
                log = open(log_path, "ab", opener=owner_only)  # noqa: SIM115 - closed by kill_kernel
                self._labkit_log = log
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
            await super()._async_launch_kernel(kernel_cmd, **kw)

        async def _async_post_start_kernel(self, **kw: Any) -> None:
            await super()._async_post_start_kernel(**kw)
            if on_start is not None:
                on_start(self)

    return RunningInterpreterKernelManager


def kill_kernel(km: Any, close_log: bool = False) -> None:
    prov = getattr(km, "provisioner", None)
    proc = getattr(prov, "process", None)
    if proc is not None:
        with contextlib.suppress(OSError):
            proc.kill()
    log = getattr(km, "_labkit_log", None)
    if log is not None and close_log:
        log.close()


_KERNEL_START_MARKERS = ("kernel died", "kernel didn't respond", "dead kernel", "kernel_info")


def died_on_start(exc: BaseException, nb: Any) -> bool:
    """True when the kernel failed before any cell ran (the only failure worth a retry)."""
    from nbclient.exceptions import DeadKernelError

    text = f"{type(exc).__name__}: {exc}".lower()
    started = any(
        c.get("cell_type") == "code" and c.get("execution_count") for c in (nb or {}).get("cells", [])
    )
    if started:
        return False
    return isinstance(exc, DeadKernelError | TimeoutError) or any(m in text for m in _KERNEL_START_MARKERS)

