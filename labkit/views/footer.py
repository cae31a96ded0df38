"""The run-metadata footer of every notebook: parameters, dataset fingerprint(s), git sha,
labkit version and UTC time."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from labkit.display import LINE, MUTED_COLOUR, Html
from labkit.views.frames import RunLike


def _git_sha(cwd: str | os.PathLike[str] | None = None) -> str:
    from labkit.gitinfo import git_sha

    return git_sha(cwd) or "unknown"


def run_metadata(params: Mapping[str, Any] | None = None, *, dataset: Any = None,
                 runs: Sequence[RunLike] = ()) -> dict[str, Any]:
    """The facts of the footer: parameters, dataset fingerprint(s), git sha, labkit version, UTC time."""
    import labkit

    fps: dict[str, str] = {}
    if dataset is not None:
        if hasattr(dataset, "fingerprint"):
            fps[str(getattr(dataset, "path", None) or "dataset")] = str(dataset.fingerprint)
        else:
            from labkit.cases import load_cases

            ds = load_cases(dataset)
            fps[str(dataset)] = ds.fingerprint
    run_ids = []
    git_sha = ""
    for run in runs:
        man: Mapping[str, Any] = {}
        if hasattr(run, "manifest"):
            man = run.manifest
        elif isinstance(run, str | os.PathLike):
            from labkit.runs import RunDir

            man = RunDir(run).manifest
        if man:
            run_ids.append(str(man.get("run_id", "")))
            mds = man.get("dataset") or {}
            if isinstance(mds, Mapping) and mds.get("fingerprint") and str(mds["fingerprint"]) not in fps.values():
                fps[str(mds.get("path") or "dataset")] = str(mds["fingerprint"])
            git_sha = git_sha or str(man.get("git_sha") or "")
    return {
        "parameters": dict(params or {}),
        "dataset_fingerprints": fps,
        "runs": run_ids,
        "git_sha": git_sha or _git_sha(),
        "labkit_version": labkit.__version__,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def run_footer(params: Mapping[str, Any] | None = None, *, dataset: Any = None,
               runs: Sequence[RunLike] = ()) -> Html:
    """The run-metadata footer: parameters, dataset fingerprint, git sha, labkit version, UTC time."""
    meta = run_metadata(params, dataset=dataset, runs=runs)
    prm = "".join(
        f"<tr><td><code>{html.escape(str(k))}</code></td><td><code>{html.escape(repr(v))}</code></td></tr>"
        for k, v in meta["parameters"].items()
    ) or "<tr><td colspan='2'><em>none</em></td></tr>"
    fps = "<br>".join(
        f"{html.escape(p)}: <code>{html.escape(fp[:16])}…</code>" for p, fp in meta["dataset_fingerprints"].items()
    ) or "—"
    runs_txt = ", ".join(html.escape(r) for r in meta["runs"]) or "—"
    return Html(
        f"<footer class='lk-footer' style='margin-top:28px;border-top:1px solid {LINE};padding-top:10px;"
        f"color:{MUTED_COLOUR};font-size:.85rem'>"
        "<strong>Run metadata</strong>"
        "<table style='font-size:.85rem'><tbody>"
        f"<tr><td>generated</td><td>{html.escape(meta['generated_at'])}</td></tr>"
        f"<tr><td>labkit version</td><td>{html.escape(meta['labkit_version'])}</td></tr>"
        f"<tr><td>git sha</td><td><code>{html.escape(meta['git_sha'])}</code></td></tr>"
        f"<tr><td>dataset fingerprint</td><td>{fps}</td></tr>"
        f"<tr><td>runs</td><td>{runs_txt}</td></tr>"
        "</tbody></table>"
        "<strong>Parameters</strong>"
        f"<table style='font-size:.85rem'><tbody>{prm}</tbody></table></footer>"
    )

