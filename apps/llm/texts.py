"""Access to the Japanese texts, with a deployment's overrides applied."""

from __future__ import annotations

import importlib
from functools import cache
from types import SimpleNamespace

from django.conf import settings

from apps.llm import texts_ja


@cache
def get_texts() -> SimpleNamespace:
    values = {k: v for k, v in vars(texts_ja).items() if k.isupper()}
    override = getattr(settings, "LLM_TEXTS_MODULE", "")
    if override:
        module = importlib.import_module(override)
        values.update({k: v for k, v in vars(module).items() if k.isupper() and k in values})
    return SimpleNamespace(**values)
