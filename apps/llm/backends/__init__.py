"""Reply backends behind one streaming interface (apps.llm.types.ReplyBackend)."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from apps.llm.types import ReplyBackend


@cache
def get_backend() -> ReplyBackend:
    """The configured backend, created once per process (a real model loads only once)."""
    name = settings.REPLY_BACKEND
    if name == "template":
        from apps.llm.backends.template import TemplateBackend

        return TemplateBackend()
    raise NotImplementedError(f"REPLY_BACKEND={name!r} is not available yet")
