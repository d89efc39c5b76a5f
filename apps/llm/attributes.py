"""The nine SteerLM attributes KARAKURI LM Chat is conditioned on.

Each takes an integer from 0 to 4. The model was tuned with the first six high and the last three at zero, so
those are the built-in defaults; a deployment changes them with LLM_ATTRIBUTES ("verbosity=2,humor=0"), and a
single request may override some of them (ReplyRequest.attributes).

This module has no Django import at module level: the console, the training export and the settings module all
import it.
"""

from __future__ import annotations

from collections.abc import Mapping

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "helpfulness",
    "correctness",
    "coherence",
    "complexity",
    "verbosity",
    "quality",
    "toxicity",
    "humor",
    "creativity",
)
ATTRIBUTE_MIN = 0
ATTRIBUTE_MAX = 4
BUILTIN_DEFAULTS: dict[str, int] = {
    "helpfulness": 4,
    "correctness": 4,
    "coherence": 4,
    "complexity": 4,
    "verbosity": 4,
    "quality": 4,
    "toxicity": 0,
    "humor": 0,
    "creativity": 0,
}


class InvalidAttributes(ValueError):
    """An attribute name is unknown or its value is not an integer from 0 to 4."""


def validate_attributes(values: Mapping[str, object]) -> dict[str, int]:
    """Check a partial or full set of attributes; returns them as ints in the canonical order.

    Booleans and floats with a fraction are refused: an attribute is a small integer, and `True` being 1 is an
    accident rather than a value anyone meant.
    """
    unknown = sorted(set(values) - set(ATTRIBUTE_NAMES))
    if unknown:
        raise InvalidAttributes(f"unknown attribute(s) {', '.join(unknown)}; known: {', '.join(ATTRIBUTE_NAMES)}")
    checked: dict[str, int] = {}
    for name in ATTRIBUTE_NAMES:
        if name not in values:
            continue
        raw = values[name]
        number = _as_int(raw)
        if number is None or not ATTRIBUTE_MIN <= number <= ATTRIBUTE_MAX:
            raise InvalidAttributes(f"{name}={raw!r}: expected an integer from {ATTRIBUTE_MIN} to {ATTRIBUTE_MAX}")
        checked[name] = number
    return checked


def _as_int(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() else None
    if isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
        return int(raw.strip())
    return None


def parse_attributes(spec: str) -> dict[str, int]:
    """Parse "verbosity=2, humor=0" (commas or spaces between pairs; "name: value" also accepted)."""
    values: dict[str, str] = {}
    for item in spec.replace(",", " ").replace(":", "=").replace("= ", "=").split():
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise InvalidAttributes(f"{item!r}: expected name=value")
        if name in values:
            raise InvalidAttributes(f"{name} is given twice")
        values[name] = value
    return validate_attributes(values)


def resolve_attributes(
    overrides: Mapping[str, object] | None = None, *, defaults: Mapping[str, object] | None = None
) -> dict[str, int]:
    """The full set of nine, in canonical order: built-in defaults < deployment defaults < overrides."""
    resolved = dict(BUILTIN_DEFAULTS)
    resolved.update(validate_attributes(deployment_defaults() if defaults is None else defaults))
    if overrides:
        resolved.update(validate_attributes(overrides))
    return {name: resolved[name] for name in ATTRIBUTE_NAMES}


def deployment_defaults() -> dict[str, int]:
    """LLM_ATTRIBUTES from the Django settings when they are configured, else the built-in defaults."""
    try:
        from django.conf import settings

        configured = settings.configured and hasattr(settings, "LLM_ATTRIBUTES")
        return dict(settings.LLM_ATTRIBUTES) if configured else dict(BUILTIN_DEFAULTS)
    except ImportError:  # used outside the Django project (training scripts)
        return dict(BUILTIN_DEFAULTS)


def format_attributes(values: Mapping[str, int]) -> str:
    """The text between [ATTR] and [/ATTR]: "helpfulness: 4 correctness: 4 ... creativity: 0"."""
    full = resolve_attributes(values, defaults={})
    return " ".join(f"{name}: {full[name]}" for name in ATTRIBUTE_NAMES)
