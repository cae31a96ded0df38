"""Redaction of what a run writes: the run option, the manifest, and the ``labkit run`` flags.

The ``redaction:`` settings (docs/traces.md) are a run option — ``runner.redaction``
in a pipeline config's ``runner:`` section, ``RunnerConfig(redaction=...)``, or the
``labkit run`` flags — so they work the same for every pipeline type and for a
``module:callable``. The patterns are those of :mod:`labkit.trace.redact`; the keys
labkit read from the environment (``api_key_env``) are registered with the catalogue
when the pipeline is loaded, before the manifest is written, so the run's redactor
replaces them in every file whatever the settings (docs/traces.md "The keys labkit reads").
An empty ``--redact-types`` is an error: ``--no-redaction`` is the one way to turn it off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError
from labkit.patterns import TYPES

if TYPE_CHECKING:
    from labkit.trace.redact import Redactor

__all__ = ["HEADER_PLACEHOLDER", "check_redaction", "redact_manifest", "redact_snapshot", "redaction_from_flags", "redactor"]

#: What an HTTP header value becomes in manifest.json (any header may carry a credential).
HEADER_PLACEHOLDER = "[REDACTED]"


def redactor(settings: Mapping[str, Any] | Redactor | None) -> Redactor:
    """The :class:`~labkit.trace.redact.Redactor` for a run's ``redaction`` option (a run's
    redactor, already built: itself)."""
    from labkit.trace.redact import Redactor

    if isinstance(settings, Redactor):
        return settings
    return Redactor.from_config(settings)


def check_redaction(settings: Any, path: str | None = None) -> None:
    """A ConfigError naming ``runner.redaction.<key>`` for settings the redactor refuses."""
    if settings is None:
        return
    if not isinstance(settings, Mapping):
        raise ConfigError("must be a mapping (the redaction settings of docs/traces.md)", path=path,
                          field="runner.redaction")
    try:
        redactor(settings)
    except ConfigError as e:
        raise ConfigError(e.message, path=path,
                          field=f"runner.redaction.{e.field}" if e.field else "runner.redaction",
                          known=e.known) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid redaction settings: {e}", path=path, field="runner.redaction") from None


def redaction_from_flags(
    *, types: str | None, patterns: Sequence[str] | None, no_content: bool, disabled: bool,
) -> dict[str, Any] | None:
    """The ``redaction`` option from ``labkit run`` flags (None when no flag was given)."""
    out: dict[str, Any] = {}
    if disabled:
        out["enabled"] = False
    if no_content:
        out["capture_content"] = False
    if types is not None:
        out["types"] = [t.strip().upper() for t in types.split(",") if t.strip()]
        if not out["types"]:
            raise ConfigError(f"--redact-types {types!r} names no type: give at least one of "
                              f"{', '.join(TYPES)}; --no-redaction is the only way to turn redaction off",
                              field="--redact-types")
    extra: dict[str, str] = {}
    for item in patterns or []:
        name, sep, rx = item.partition("=")
        if not sep or not name.strip() or not rx:
            raise ConfigError(f"--redact-pattern must be NAME=REGEX, got {item!r}", field="--redact-pattern")
        extra[name.strip()] = rx
    if extra:
        out["extra_patterns"] = extra
    return out or None


def _headers_masked(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        out = {}
        for k, v in cfg.items():
            if k == "headers" and isinstance(v, dict):
                out[k] = {str(h): HEADER_PLACEHOLDER for h in v}
            else:
                out[k] = _headers_masked(v)
        return out
    if isinstance(cfg, list):
        return [_headers_masked(v) for v in cfg]
    return cfg


#: Manifest keys holding hashes and commits (never secrets, never rewritten).
_MANIFEST_IDS = frozenset({"git_sha", "hash", "config_hash", "fingerprint", "locked_at", "finished_at"})


def redact_manifest(manifest: Mapping[str, Any], settings: Mapping[str, Any] | Redactor | None = None) -> dict[str, Any]:
    """manifest.json as it may be written: HTTP header values masked, every other string
    through the redactor's full catalogue plus the run's extra patterns (a manifest holds
    configs, not content, so the run's content and type choices do not apply to it).
    ``settings``: the run's ``redaction`` option, or the run's redactor built from it."""
    from labkit.trace.redact import DEFAULT_SKIP_KEYS, Redactor

    skip = sorted(DEFAULT_SKIP_KEYS | _MANIFEST_IDS)
    if isinstance(settings, Redactor):
        red = Redactor(extra_patterns=dict(settings.extra_patterns), skip_keys=frozenset(skip))
    else:  # only the extra patterns of the settings (validated with the run's config) apply
        red = Redactor.from_config({"extra_patterns": (settings or {}).get("extra_patterns"), "skip_keys": skip})
    out: dict[str, Any] = red.redact(_headers_masked(dict(manifest)))
    return out


def redact_snapshot(cases: list[dict[str, Any]], settings: Mapping[str, Any] | Redactor | None) -> str:
    """The JSONL text of a run's dataset snapshot (``cases.jsonl``), redacted with the run's
    settings; each case keeps its id, so the run rescores from it. A phrase check hidden by a
    placeholder is then unmeasured (``redacted``), not 0 (docs/metrics.md)."""
    import json

    red = redactor(settings)
    lines = []
    for c in cases:
        r = dict(red.redact(c))
        r["id"] = c["id"]
        lines.append(json.dumps(r, ensure_ascii=False) + "\n")
    return "".join(lines)
