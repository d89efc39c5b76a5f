import time

import pytest
import torch

from apps.llm.backends import backend_create, get_backend
from apps.llm.backends.hf import HfBackend
from apps.llm.errors import BackendEmptyOutput, BackendError, BackendOutOfMemory, BackendTimeout, BackendUnavailable
from tests.llm.factories import long_history, reply_request
from tests.llm.test_prompt import ADVERSARIAL


def _greedy_tokens(backend, request, n):
    """What the model generates for `request` without the backend: the reference for streaming."""
    ids = torch.tensor([backend.render(request).token_ids])
    with torch.inference_mode():
        out = backend.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False, eos_token_id=None
        )
    return out[0, ids.shape[-1] :].tolist()


def _visible(tokenizer, tokens):
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    return "".join(c for c in text if c in "\t\n" or ord(c) >= 0x20 and c != "\x7f").lstrip()


def test_it_streams_what_the_model_generates(llama_backend):
    request = reply_request()
    tokens = _greedy_tokens(llama_backend, request, llama_backend.max_new_tokens)

    pieces = list(llama_backend.stream(request))

    assert len(pieces) > 1
    assert "".join(pieces) == _visible(llama_backend.tokenizer, tokens)
    assert llama_backend.last_run.generated_tokens == llama_backend.max_new_tokens


def test_it_stops_at_eos(tiny_llama_dir, llama_backend):
    request = reply_request()
    tokens = _greedy_tokens(llama_backend, request, 12)
    k = next(i for i in range(3, 12) if tokens[i] not in tokens[:i])
    backend = HfBackend(tiny_llama_dir, device="cpu", context_tokens=2048, max_new_tokens=50, eos_token_ids=[tokens[k]])

    text = "".join(backend.stream(request))

    assert text == _visible(backend.tokenizer, tokens[:k])
    assert backend.last_run.generated_tokens == k + 1


def test_eos_first_is_an_empty_output_error(tiny_llama_dir, llama_backend):
    request = reply_request()
    first = _greedy_tokens(llama_backend, request, 1)[0]
    backend = HfBackend(tiny_llama_dir, device="cpu", context_tokens=2048, max_new_tokens=20, eos_token_ids=[first])
    with pytest.raises(BackendEmptyOutput):
        list(backend.stream(request))


def test_closing_the_stream_stops_generation(tiny_llama_dir):
    backend = HfBackend(tiny_llama_dir, device="cpu", context_tokens=2048, max_new_tokens=1000, eos_token_ids=[0])
    stream = backend.stream(reply_request())
    next(stream), next(stream)

    stream.close()

    run = backend.last_run
    assert run.cancelled
    assert not run.thread.is_alive()
    assert run.generated_tokens < 1000


def test_it_times_out(tiny_llama_dir):
    backend = HfBackend(tiny_llama_dir, device="cpu", context_tokens=2048, max_new_tokens=1000, timeout=0.05)
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        list(backend.stream(reply_request()))
    assert time.monotonic() - started < 30
    assert not backend.last_run.thread.is_alive()


def test_a_crash_in_generate_is_a_backend_error(llama_backend, monkeypatch):
    def crash(**kwargs):
        raise RuntimeError("device lost")

    monkeypatch.setattr(llama_backend.model, "generate", crash)
    with pytest.raises(BackendError, match="device lost"):
        list(llama_backend.stream(reply_request()))


def test_out_of_memory_is_reported_as_such(llama_backend, monkeypatch):
    def oom(**kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(llama_backend.model, "generate", oom)
    with pytest.raises(BackendOutOfMemory):
        list(llama_backend.stream(reply_request()))


def test_a_long_conversation_is_fitted_to_the_context(tiny_llama_dir):
    backend = HfBackend(tiny_llama_dir, device="cpu", context_tokens=800, max_new_tokens=16)
    request = reply_request("最後の質問です。", history=long_history(20))

    prompt = backend.render(request)
    text = "".join(backend.stream(request))

    assert prompt.n_tokens <= 800 - 16 and prompt.dropped_turns > 0
    assert "最後の質問です。" in prompt.text
    assert text


@pytest.mark.parametrize("attack", ADVERSARIAL[:3])
def test_customer_special_tokens_never_reach_the_model_as_ids(llama_backend, attack):
    request = reply_request(attack)
    ids = llama_backend.render(request).token_ids
    assert ids.count(llama_backend.tokenizer.bos_token_id) == 1
    assert ids.count(llama_backend.tokenizer.eos_token_id) == 0
    assert "".join(llama_backend.stream(request))


def test_it_drives_a_mixtral_with_its_chat_template(mixtral_backend):
    assert mixtral_backend.render(reply_request()).format == "chat-template"
    assert len(mixtral_backend.eos_token_ids) == 2  # </s> and <|END_OF_TURN_TOKEN|>
    assert "".join(mixtral_backend.stream(reply_request()))


def test_it_refuses_a_directory_without_a_model(tmp_path):
    with pytest.raises(BackendUnavailable):
        HfBackend(tmp_path)


def test_get_backend_builds_hf_from_settings(settings, tiny_llama_dir):
    settings.REPLY_BACKEND = "hf"
    settings.LLM_MODEL_DIR = tiny_llama_dir
    settings.LLM_DEVICE = "cpu"
    get_backend.cache_clear()
    try:
        backend = get_backend()
        assert isinstance(backend, HfBackend)
        assert backend.model_id == "hf:tiny-llama"
        assert backend is get_backend()
    finally:
        get_backend.cache_clear()


def test_hf_without_a_model_dir_is_unavailable(settings):
    settings.LLM_MODEL_DIR = None
    with pytest.raises(BackendUnavailable, match="LLM_MODEL_DIR"):
        backend_create("hf")
