"""Parsing for the training-data settings that the generic env helpers do not cover.

Imported by karakuri_cs/settings.py, so it must not touch django.conf.settings. Each function raises
ImproperlyConfigured naming the variable, like the helpers in karakuri_cs.env.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

# The kinds of personal data the masker knows (apps.training.masking), in the order it looks for them.
PII_KINDS: tuple[str, ...] = ("email", "card", "my_number", "phone", "postal", "address", "name")


def pii_kinds_setting(name: str, value: str) -> tuple[str, ...]:
    """TRAINING_PII_KINDS="email,phone,...": which kinds to mask; "none" masks nothing."""
    parts = [p.strip().lower() for p in value.split(",") if p.strip()]
    if parts == ["none"]:
        return ()
    unknown = [p for p in parts if p not in PII_KINDS]
    if unknown or not parts:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not valid: expected some of {', '.join(PII_KINDS)} separated by commas, or none."
        )
    return tuple(k for k in PII_KINDS if k in parts)


def string_list_setting(value: str) -> tuple[str, ...]:
    """A comma-separated list of literal strings, blanks dropped."""
    return tuple(p.strip() for p in value.split(",") if p.strip())
