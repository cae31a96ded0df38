"""Redaction of what a run writes: the run option, the manifest, and the ``labkit run`` flags.

The ``redaction:`` settings (docs/traces.md) are a run option — ``runner.redaction``
in a pipeline config's ``runner:`` section, ``RunnerConfig(redaction=...)``, or the
``labkit run`` flags — so they work the same for every pipeline type and for a
``module:callable``. The patterns are those of :mod:`labkit.trace.redact`; the keys
labkit read from the environment (``api_key_env``), the configured header values and the
credentials of a ``base_url`` (:func:`labkit.openai_compat.config_secrets`) are registered with
the catalogue when the pipeline is loaded, before the manifest is written, so the run's redactor
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

__all__ = ["check_redaction", "redact_snapshot", "redaction_from_flags", "redactor"]

def redactor(settings: Mapping[str, Any] | Redactor | None) -> Redactor:
    """The :class:`~labkit.trace.redact.Redactor` for a run's ``redaction`` option (a run's
    redactor, already built: itself)."""
    from labkit.trace.redact import Redactor

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
