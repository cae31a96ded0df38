"""Guardrails middleware around any pipeline callable.

``Guardrails(pipeline, policy)`` is itself a pipeline (sync or async, as the
wrapped one). Around each call it:

1. checks the input (the case question) for prompt-injection patterns;
2. calls the pipeline (unless the input was flagged and ``block_on_injection``);
3. checks the output (answer and tool outputs) against the policy:
   must-not-disclose patterns and secrets (API keys, tokens, cards, ...);
4. writes its verdicts on the result as
   ``guardrails: {pii_redacted, injection_flag, violations, blocked}``, and when
   a blocking rule fires replaces the answer with the refusal text and sets
   ``status: "blocked"`` (an addition to ok | error | timeout). A runner that
   sets the status itself still gets ``guardrails.blocked: true``, from which
   :func:`labkit.trace.record.make_trace` records the trace as ``blocked``.

Violations are strings ``<kind>:<name>``: ``injection:ignore_instructions``,
``disclosure:internal_hostname``, ``secret:API_KEY``, ``pii:EMAIL``.

Policy config (``GuardrailPolicy.from_config``), every key optional::

    block_on_injection: true
    block_on_disclosure: true
    block_on_secret: true
    redact_output_pii: true          # e-mail/phone/card/IP in the answer are masked
    refusal: "I can't help with that request."
    injection_patterns: {name: regex}   # added to the built-ins
    must_not_disclose: {name: regex}    # added to the built-ins
    use_case_must_not_include: false    # also treat the case's must_not_include as policy
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit import patterns
from labkit.cases import EvalCase
from labkit.errors import ConfigError
from labkit.trace.redact import Redactor

INJECTION_PATTERNS: dict[str, str] = {
    "ignore_instructions": r"(?i)\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|all|your)\b.{0,20}\b(instructions?|prompts?|rules|directions)\b",
    "reveal_system_prompt": r"(?i)\b(reveal|print|show|repeat|leak|output|tell me)\b.{0,40}\b(system prompt|hidden (prompt|instructions)|initial instructions|developer message)\b",
    "role_override": r"(?i)\b(you are now|from now on you are|pretend (to be|you are)|act as)\b.{0,40}\b(unrestricted|unfiltered|jailbroken|dan|developer mode|no (rules|restrictions|limits))\b",
    "disable_safety": r"(?i)\b(bypass|disable|override|turn off)\b.{0,30}\b(safety|guardrails?|filters?|polic(y|ies)|content rules)\b",
    "delimiter_injection": r"(?i)(</?(system|assistant)>|\[/?INST\]|<\|im_(start|end)\|>|###\s*(system|instruction))",
    "fake_system_message": r"(?i)(^|\n)\s*\[?(system|admin|developer|root)\s*(notice|message|override|prompt|instruction)s?\]?\s*:",
    "policy_override": r"(?i)\b(forget|disregard|pretend|suspend)\b.{0,40}\b(polic(y|ies)|rules|guidelines|restrictions)\b",
    "exfiltration": r"(?i)\b(send|post|upload|forward|exfiltrate)\b.{0,60}\b(https?://|to (this|my|the following) (url|address|endpoint))",
}

MUST_NOT_DISCLOSE: dict[str, str] = {
    "system_prompt": r"(?i)\b(my|the) (system prompt|hidden instructions) (is|are|says)\b",
    "internal_hostname": r"(?i)\b[a-z0-9-]+\.(internal|corp|intranet|local)\b",
    "private_key": r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----",
    "password_disclosure": r"(?i)\b(the|your|admin) password (is|was)\b",
}

SECRET_TYPES = patterns.SECRET_TYPES
PII_TYPES = patterns.PII_TYPES

_POLICY_KEYS = (
    "block_on_injection",
    "block_on_disclosure",
    "block_on_secret",
    "redact_output_pii",
    "refusal",
    "injection_patterns",
    "must_not_disclose",
    "use_case_must_not_include",
)


def _compile(patterns: Mapping[str, str], fld: str) -> dict[str, re.Pattern[str]]:
    out: dict[str, re.Pattern[str]] = {}
    for name, rx in patterns.items():
        try:
            out[str(name)] = re.compile(rx)
        except re.error as e:
            raise ConfigError(f"invalid regex for {name!r}: {e}", field=f"{fld}.{name}") from None
    return out


@dataclass
class GuardrailPolicy:
    """What the middleware checks and what it blocks."""

    block_on_injection: bool = True
    block_on_disclosure: bool = True
    block_on_secret: bool = True
    redact_output_pii: bool = True
    refusal: str = "I can't help with that request."
    injection_patterns: Mapping[str, str] = field(default_factory=lambda: dict(INJECTION_PATTERNS))
    must_not_disclose: Mapping[str, str] = field(default_factory=lambda: dict(MUST_NOT_DISCLOSE))
    use_case_must_not_include: bool = False

    def __post_init__(self) -> None:
        self._inj = _compile(self.injection_patterns, "injection_patterns")
        self._mnd = _compile(self.must_not_disclose, "must_not_disclose")
        self._secrets = Redactor(types=SECRET_TYPES)
        self._pii = Redactor(types=PII_TYPES)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None = None) -> GuardrailPolicy:
        if cfg is None:
            return cls()
        if not isinstance(cfg, Mapping):
            raise ConfigError("guardrails config must be a mapping", field="guardrails")
        for key in cfg:
            if key not in _POLICY_KEYS:
                raise ConfigError(f"unknown guardrails key {key!r}", field=str(key), known=_POLICY_KEYS)
        kw: dict[str, Any] = {k: cfg[k] for k in cfg if k not in ("injection_patterns", "must_not_disclose")}
        for key, base in (("injection_patterns", INJECTION_PATTERNS), ("must_not_disclose", MUST_NOT_DISCLOSE)):
            extra = cfg.get(key) or {}
            if not isinstance(extra, Mapping):
                raise ConfigError("must be a mapping name -> regex", field=key)
            kw[key] = {**base, **{str(k): str(v) for k, v in extra.items()}}
        return cls(**kw)

    # ------------------------------------------------------------- checks
    def check_input(self, text: str) -> list[str]:
        """Names of the injection patterns the text matches."""
        return [name for name, rx in self._inj.items() if rx.search(text)]

    def check_output(self, text: str, case: EvalCase | None = None) -> list[str]:
        """Violations of the output policy: ``disclosure:<name>`` and ``secret:<TYPE>``."""
        out = [f"disclosure:{name}" for name, rx in self._mnd.items() if rx.search(text)]
        if self.use_case_must_not_include and case is not None:
            low = " ".join(text.lower().split())
            out += [f"disclosure:must_not_include:{p}" for p in case.must_not_include
                    if " ".join(p.lower().split()) in low]
        for t in SECRET_TYPES:
            if Redactor(types=(t,)).redact_text(text)[1]:
                out.append(f"secret:{t}")
        return out


def _output_texts(result: Mapping[str, Any]) -> list[str]:
    texts = []
    if isinstance(result.get("answer"), str):
        texts.append(result["answer"])
    for tc in result.get("tool_calls") or []:
        if isinstance(tc, Mapping) and tc.get("output") is not None:
            texts.append(str(tc["output"]))
    return texts


class Guardrails:
    """Wrap a pipeline callable with input and output checks (see the module doc)."""

    def __init__(self, pipeline: Callable[..., Any], policy: GuardrailPolicy | Mapping[str, Any] | None = None) -> None:
        self.pipeline = pipeline
        self.policy = policy if isinstance(policy, GuardrailPolicy) else GuardrailPolicy.from_config(policy)
        fn = getattr(pipeline, "fn", pipeline)
        call = getattr(fn, "__call__", None)  # noqa: B004
        self.is_async = inspect.iscoroutinefunction(fn) or (call is not None and inspect.iscoroutinefunction(call))

    def __call__(self, case: EvalCase) -> Any:
        flags = self.policy.check_input(case.question)
        if flags and self.policy.block_on_injection:
            blocked = self._blocked(flags, [])
            if self.is_async:
                async def done() -> dict[str, Any]:
                    return blocked
                return done()
            return blocked
        if self.is_async:
            return self._acall(case, flags)
        return self.after(case, self.pipeline(case), flags)

    async def _acall(self, case: EvalCase, flags: list[str]) -> dict[str, Any]:
        res = await self.pipeline(case)
        return self.after(case, res, flags)

    def _blocked(self, flags: list[str], violations: list[str], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        out = dict(base or {})
        out.update(
            {
                "status": "blocked",
                "answer": self.policy.refusal,
                "citations": [],
                "error": "blocked: " + ", ".join([f"injection:{f}" for f in flags] + violations),
                "guardrails": {
                    "pii_redacted": False,
                    "injection_flag": bool(flags),
                    "violations": [f"injection:{f}" for f in flags] + violations,
                    "blocked": True,
                },
            }
        )
        # the blocked output never leaves: drop tool outputs too
        out["tool_calls"] = [
            {k: v for k, v in tc.items() if k != "output"} for tc in out.get("tool_calls") or [] if isinstance(tc, Mapping)
        ]
        return out

    def after(self, case: EvalCase, result: Mapping[str, Any], flags: list[str]) -> dict[str, Any]:
        """Apply the output checks to a pipeline result."""
        res = dict(result)
        violations: list[str] = []
        for text in _output_texts(res):
            for v in self.policy.check_output(text, case):
                if v not in violations:
                    violations.append(v)
        block = (
            (flags and self.policy.block_on_injection)
            or (any(v.startswith("disclosure:") for v in violations) and self.policy.block_on_disclosure)
            or (any(v.startswith("secret:") for v in violations) and self.policy.block_on_secret)
        )
        if block:
            return self._blocked(flags, violations, res)
        pii = False
        if self.policy.redact_output_pii and isinstance(res.get("answer"), str):
            red, n = self.policy._pii.redact_text(res["answer"])
            if n:
                pii = True
                res["answer"] = red
                violations += [f"pii:{t}" for t in PII_TYPES if Redactor(types=(t,)).redact_text(result["answer"])[1]]
        prev: Mapping[str, Any] = res["guardrails"] if isinstance(res.get("guardrails"), Mapping) else {}
        res["guardrails"] = {
            "pii_redacted": pii or bool(prev.get("pii_redacted", False)),
            "injection_flag": bool(flags) or bool(prev.get("injection_flag", False)),
            "violations": list(prev.get("violations") or []) + [f"injection:{f}" for f in flags] + violations,
            "blocked": False,
        }
        return res


def guard(pipeline: Any, policy: GuardrailPolicy | Mapping[str, Any] | None = None) -> Any:
    """Wrap a pipeline: a ``LoadedPipeline`` gets a copy whose ``fn`` is guarded
    (name, config and hash kept, ``config["guardrails"]`` recording the policy);
    any other callable becomes a :class:`Guardrails`."""
    import dataclasses

    g = Guardrails(pipeline, policy)
    if dataclasses.is_dataclass(pipeline) and hasattr(pipeline, "fn") and not isinstance(pipeline, type):
        g.pipeline = pipeline.fn
        cfg = dict(getattr(pipeline, "config", {}) or {})
        cfg.setdefault("guardrails", {"enabled": True})
        return dataclasses.replace(pipeline, fn=g, config=cfg)
    return g
