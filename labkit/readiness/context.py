"""Everything the review reads, gathered once: paths, runs, configs, gate, dataset, alert rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from labkit.errors import ConfigError, LabkitError
from labkit.readiness.model import Paths
from labkit.readiness.runview import RunView, chronological, find_runs

RunLike = str | os.PathLike[str] | RunView
T = TypeVar("T")


def read_yaml_file(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(mapping, None) or (None, reason) — never raises."""
    from labkit.config import read_yaml

    try:
        return read_yaml(path), None
    except ConfigError as e:
        return None, str(e)


@dataclass
class PipelineConfig:
    path: Path
    config: dict[str, Any] | None
    error: str | None = None

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Context:
    """The evidence of one review."""

    paths: Paths
    candidate: RunView | None = None
    baseline: RunView | None = None
    history: list[RunView] = field(default_factory=list)
    today: dt.date = field(default_factory=dt.date.today)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def collect(
        cls,
        *,
        root: str | os.PathLike[str] = ".",
        baseline: RunLike | None = None,
        variant: RunLike | None = None,
        today: dt.date | None = None,
        **paths: Any,
    ) -> Context:
        p = Paths(root=Path(root), **{k: v for k, v in paths.items() if v is not None})
        base = RunView.verified(baseline) if baseline is not None else None
        var = RunView.verified(variant) if variant is not None else None
        cand = var or base
        ctx = cls(p, cand, base if var is not None else None, today=today or dt.date.today())
        ctx.history = ctx._history()
        return ctx

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per review: evidence several items read (dataset statistics, ...)."""
        if key not in self._memo:
            self._memo[key] = compute()
        value: T = self._memo[key]
        return value

    # ---- runs -----------------------------------------------------------------------------------
    def _history(self) -> list[RunView]:
        """Runs of the candidate's pipeline version (same config hash) under runs_dir, plus the
        candidate: each run once (a copy of a run keeps its run_uuid: the candidate copied out of
        runs_dir is not counted twice)."""
        from labkit.runs import RunDir

        cand = self.candidate
        if cand is None:
            return []
        assert self.paths.runs_dir is not None
        out: list[RunView] = []
        seen = {RunDir(cand.path).run_uuid}
        for r in find_runs(self.paths.runs_dir):
            try:
                same = cand.config_hash is not None and r.config_hash == cand.config_hash
                uid = RunDir(r.path).run_uuid if same else ""
            except LabkitError:
                continue
            if same and uid not in seen:
                out.append(r)
                seen.add(uid)
        out.append(cand)
        return chronological(out)

    # ---- configs -------------------------------------------------------------------------------
    def pipeline_files(self) -> list[PipelineConfig]:
        if "pipelines" not in self._memo:
            d = self.paths.pipelines_dir
            assert d is not None
            files = sorted(list(d.glob("*.yaml")) + list(d.glob("*.yml"))) if d.is_dir() else []
            out = []
            for f in files:
                cfg, err = read_yaml_file(f)
                out.append(PipelineConfig(f, cfg, err))
            self._memo["pipelines"] = out
        result: list[PipelineConfig] = self._memo["pipelines"]
        return result

    def fallback_targets(self) -> set[str]:
        names = set()
        for pc in self.pipeline_files():
            fb = (pc.config or {}).get("fallback")
            if isinstance(fb, str):
                names.add(Path(fb).name)
        return names

    def candidate_config(self) -> PipelineConfig | None:
        """The config file of the candidate run, found in the pipelines folder under review."""
        cand = self.candidate
        files = {pc.path.name: pc for pc in self.pipeline_files()}
        if cand is None:
            return None
        spec = cand.pipeline.get("path") or cand.pipeline.get("spec")
        if isinstance(spec, str) and Path(spec).name in files:
            return files[Path(spec).name]
        name = cand.pipeline.get("name") or cand.config.get("name")
        for suffix in (".yaml", ".yml"):
            if isinstance(name, str) and f"{name}{suffix}" in files:
                return files[f"{name}{suffix}"]
        return None

    def reviewed_configs(self) -> list[PipelineConfig]:
        """The configs whose reliability policy is reviewed: the candidate's, else every deployable one."""
        cc = self.candidate_config()
        if cc is not None:
            return [cc]
        fb = self.fallback_targets()
        return [pc for pc in self.pipeline_files() if pc.path.name not in fb]

    # ---- gate -------------------------------------------------------------------------------
    def gate(self) -> tuple[Any, str | None]:
        if "gate" not in self._memo:
            from labkit.gate import Gate

            assert self.paths.gate is not None
            if not self.paths.gate.is_file():
                self._memo["gate"] = (None, f"{self.paths.gate} not found")
            else:
                try:
                    self._memo["gate"] = (Gate.load(self.paths.gate), None)
                except LabkitError as e:
                    self._memo["gate"] = (None, str(e))
        g: tuple[Any, str | None] = self._memo["gate"]
        return g

    def gate_report(self) -> tuple[Any, str | None]:
        """The gate evaluated on the candidate (with the baseline for regression checks)."""
        if "gate_report" not in self._memo:
            gate, err = self.gate()
            if gate is None or self.candidate is None:
                self._memo["gate_report"] = (None, err or "no candidate run")
            elif not (self.candidate.path / "metrics.json").is_file():
                self._memo["gate_report"] = (None, f"run {self.candidate.run_id} is not scored (no metrics.json)")
            else:
                kw: dict[str, Any] = {}
                if self.baseline is not None:
                    kw["baseline"] = str(self.baseline.path)
                if self.paths.reviews is not None and self.paths.reviews.is_file():
                    kw["reviews"] = str(self.paths.reviews)
                if self.paths.dataset is not None and self.paths.dataset.is_file():
                    kw["dataset"] = str(self.paths.dataset)
                try:
                    self._memo["gate_report"] = (gate.evaluate(str(self.candidate.path), **kw), None)
                except LabkitError as e:
                    self._memo["gate_report"] = (None, str(e))
        r: tuple[Any, str | None] = self._memo["gate_report"]
        return r

    def lock_info(self) -> tuple[dict[str, Any] | None, str | None]:
        from labkit.gate import gate_lock_info

        assert self.paths.gate is not None
        try:
            return gate_lock_info(self.paths.gate), None
        except LabkitError as e:
            return None, str(e)

    # ---- dataset ----------------------------------------------------------------------------
    def dataset(self) -> tuple[Any, str | None]:
        if "dataset" not in self._memo:
            from labkit.cases import load_cases

            assert self.paths.dataset is not None
            try:
                self._memo["dataset"] = (load_cases(self.paths.dataset), None)
            except LabkitError as e:
                self._memo["dataset"] = (None, str(e).split(";")[0])
        d: tuple[Any, str | None] = self._memo["dataset"]
        return d

    def run_cases(self, run: RunView) -> tuple[Any, str]:
        """(the cases ``run`` was scored on, where they come from) — its own dataset (the manifest's,
        :func:`labkit.rundata.scored_cases`), else the review's dataset when it is that one (same
        fingerprint); (None, why) when neither can be read as the run's."""
        def read() -> tuple[Any, str]:
            from labkit.rundata import scored_cases
            from labkit.runs import RunDir

            rd = RunDir(run.path)
            try:
                return scored_cases(rd), str(rd.dataset_path())
            except LabkitError as own:
                try:
                    return scored_cases(rd, self.paths.dataset), str(self.paths.dataset)
                except LabkitError:
                    return None, f"the cases run {run.run_id} was scored on cannot be read: {str(own).split(';')[0]}"

        return self.memo(f"run_cases:{run.path}", read)

    # ---- alert rules ------------------------------------------------------------------------
    def alert_rules(self) -> tuple[list[dict[str, Any]], str | None]:
        """The alert rules as plain dicts (via labkit.trace.alerts when present, else the YAML)."""
        if "alerts" not in self._memo:
            self._memo["alerts"] = _load_alert_rules(self.paths.alerts)
        a: tuple[list[dict[str, Any]], str | None] = self._memo["alerts"]
        return a

    def comparison(self) -> tuple[dict[str, Any] | None, str | None]:
        """compare_runs(baseline, candidate).to_dict(), aligned on shared ids when fingerprints differ."""
        if "comparison" not in self._memo:
            self._memo["comparison"] = compare(self.baseline, self.candidate)
        c: tuple[dict[str, Any] | None, str | None] = self._memo["comparison"]
        return c


def compare(base: RunView | None, var: RunView | None) -> tuple[dict[str, Any] | None, str | None]:
    if base is None or var is None:
        return None, "no baseline run to compare against"
    for r in (base, var):
        if not (r.path / "scores.csv").is_file():
            return None, f"run {r.run_id} is not scored (no scores.csv)"
    try:
        from labkit.compare import compare_runs
    except ImportError:  # pragma: no cover - compare ships with labkit
        return None, "labkit.compare is not available"
    try:
        return compare_runs(str(base.path), str(var.path)).to_dict(), None
    except LabkitError as e:
        try:
            d = compare_runs(str(base.path), str(var.path), align=True).to_dict()
            return d, f"aligned on shared case ids ({e})"
        except LabkitError as e2:
            return None, str(e2)


def _rule_to_dict(r: Any) -> dict[str, Any]:
    if isinstance(r, Mapping):
        return dict(r)
    if dataclasses.is_dataclass(r) and not isinstance(r, type):
        return dataclasses.asdict(r)
    if hasattr(r, "to_dict"):
        d = r.to_dict()
        return dict(d) if isinstance(d, Mapping) else {"rule": str(r)}
    return dict(getattr(r, "__dict__", {"rule": str(r)}))


def _load_alert_rules(path: Path | None) -> tuple[list[dict[str, Any]], str | None]:
    if path is None or not path.is_file():
        return [], f"{path} not found"
    try:
        from labkit.trace import alerts as alerts_mod

        rules = alerts_mod.load_rules(path)
        items = rules.rules if hasattr(rules, "rules") else rules
        return [_rule_to_dict(r) for r in items], None
    except (ImportError, AttributeError):
        pass
    except LabkitError as e:
        return [], str(e)
    data, err = read_yaml_file(path)
    if data is None:
        return [], err
    rules_raw = data.get("rules") or data.get("alerts") or []
    if not isinstance(rules_raw, list):
        return [], f"{path}: 'rules' must be a list"
    return [r for r in rules_raw if isinstance(r, dict)], None


def rule_text(rule: Mapping[str, Any]) -> str:
    """All string values of a rule, lower-cased, for matching what a rule watches."""
    parts: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, Mapping):
            for k, v in x.items():
                parts.append(str(k).lower())
                walk(v)
        elif isinstance(x, list | tuple):
            for v in x:
                walk(v)
        elif isinstance(x, str):
            parts.append(x.lower())

    walk(rule)
    return " ".join(parts)


def rule_name(rule: Mapping[str, Any]) -> str:
    return str(rule.get("name") or rule.get("id") or rule.get("metric") or rule.get("kind") or "rule")
