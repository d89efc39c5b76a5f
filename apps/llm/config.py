"""Parsing for the reply-generation settings that the generic env helpers do not cover.

Imported by karakuri_cs/settings.py, so it must not touch django.conf.settings. Each function raises
ImproperlyConfigured naming the variable, like the helpers in karakuri_cs.env.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from apps.llm.attributes import InvalidAttributes, parse_attributes


def attributes_setting(name: str, value: str) -> dict[str, int]:
    """LLM_ATTRIBUTES="verbosity=2,humor=0": the deployment's attribute defaults (partial is fine)."""
    try:
        return parse_attributes(value)
    except InvalidAttributes as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not valid: {exc}.") from None


def int_list_setting(name: str, value: str, *, minimum: int = 1) -> list[int]:
    """A comma-separated list of integers such as sequence-length buckets "1024,2048,4096"; sorted."""
    try:
        numbers = sorted({int(part) for part in value.replace(" ", "").split(",") if part})
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not valid: expected integers separated by commas.") from None
    if not numbers or numbers[0] < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} is not valid: expected integers of at least {minimum}.")
    return numbers
