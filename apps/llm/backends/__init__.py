"""Reply backends behind one streaming interface (apps.llm.types.ReplyBackend).

| REPLY_BACKEND | what generates | needs |
|---|---|---|
| template | the FAQ answer in a polite frame | nothing |
| hf | transformers, CPU or CUDA | LLM_MODEL_DIR |
| neuron | transformers-neuronx on Inferentia2/Trainium | LLM_MODEL_DIR, compiled LLM_NEURON_ARTIFACT_DIR |
| openai | an OpenAI-compatible server | LLM_OPENAI_BASE_URL (LLM_MODEL_DIR optional: its tokenizer) |

Every backend's `stream(request)` is a generator that may be closed early (generation stops) and raises a
subclass of apps.llm.errors.BackendError on failure, timeout or empty output.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings

from apps.llm.errors import BackendUnavailable
from apps.llm.types import ReplyBackend


@cache
def get_backend() -> ReplyBackend:
    """The configured backend, created once per process (a real model loads only once)."""
    return backend_create(settings.REPLY_BACKEND)


def backend_create(name: str) -> ReplyBackend:
    """A new backend of kind `name` configured from the settings (get_backend() caches one)."""
    if name == "template":
        from apps.llm.backends.template import TemplateBackend

        return TemplateBackend()
    generation = {
        "context_tokens": settings.LLM_CONTEXT_TOKENS,
        "max_new_tokens": settings.LLM_MAX_NEW_TOKENS,
        "temperature": settings.LLM_TEMPERATURE,
        "top_p": settings.LLM_TOP_P,
        "timeout": settings.LLM_GENERATION_TIMEOUT,
    }
    if name == "openai":
        from apps.llm.backends.openai_compat import OpenAICompatibleBackend
        from apps.llm.prompt import configured_tokenizer

        return OpenAICompatibleBackend(
            base_url=settings.LLM_OPENAI_BASE_URL,
            model=settings.LLM_OPENAI_MODEL,
            api_key=settings.LLM_OPENAI_API_KEY,
            api=settings.LLM_OPENAI_API,
            tokenizer=configured_tokenizer(),
            connect_timeout=settings.LLM_OPENAI_CONNECT_TIMEOUT,
            **generation,
        )
    model_dir = settings.LLM_MODEL_DIR
    if not model_dir:
        raise BackendUnavailable(f"REPLY_BACKEND={name} needs LLM_MODEL_DIR (a local model directory)", backend=name)
    if name == "hf":
        from apps.llm.backends.hf import HfBackend

        return HfBackend(model_dir, device=settings.LLM_DEVICE, dtype=settings.LLM_DTYPE, **generation)
    if name == "neuron":
        from apps.llm.backends.neuron import NeuronBackend

        return NeuronBackend(
            model_dir, artifact_dir=settings.LLM_NEURON_ARTIFACT_DIR, options=neuron_options(), **generation
        )
    raise BackendUnavailable(f"REPLY_BACKEND={name!r} is not a known backend", backend=name)


def neuron_options():
    """The Neuron compile/serve options from the LLM_NEURON_* settings."""
    from apps.llm.backends.neuron import NeuronOptions

    return NeuronOptions(
        tp_degree=settings.LLM_NEURON_TP_DEGREE,
        amp=settings.LLM_NEURON_AMP,
        sequence_buckets=tuple(settings.LLM_NEURON_SEQUENCE_BUCKETS),
        context_buckets=tuple(settings.LLM_NEURON_CONTEXT_BUCKETS),
        batch_size=settings.LLM_NEURON_BATCH_SIZE,
    )
