"""The openai backend against a small real HTTP server speaking the OpenAI streaming protocol (SSE)."""

import time

import pytest

from apps.llm.backends import backend_create
from apps.llm.backends.openai_compat import OpenAICompatibleBackend
from apps.llm.errors import BackendEmptyOutput, BackendError, BackendTimeout
from tests.llm.factories import reply_request
from tests.llm.openai_standin import REPLY, OpenAIStandIn


@pytest.fixture
def server():
    server = OpenAIStandIn()
    yield server
    server.close()


def _backend(server, model="karakuri", **kwargs):
    return OpenAICompatibleBackend(base_url=server.base_url, model=model, max_new_tokens=64, **kwargs)


def test_it_streams_completions_with_the_prompt_rendered_here(server):
    backend = _backend(server, api_key="secret")
    pieces = list(backend.stream(reply_request()))

    assert pieces == REPLY
    (request,) = server.requests
    assert request["path"] == "/v1/completions"
    assert request["auth"] == "Bearer secret"
    body = request["body"]
    assert body["stream"] is True and body["max_tokens"] == 64
    assert body["prompt"].startswith("[INST] <<SYS>>\n")  # the server adds BOS itself
    assert body["prompt"].endswith("[/ATTR] [/INST]")
    assert "</s>" in body["stop"] and "[INST]" in body["stop"]


def test_with_a_tokenizer_it_sends_token_ids(server, llama_tokenizer):
    backend = _backend(server, tokenizer=llama_tokenizer)
    list(backend.stream(reply_request()))
    prompt = server.requests[0]["body"]["prompt"]
    assert isinstance(prompt, list) and prompt[0] == llama_tokenizer.bos_token_id
    assert prompt == list(backend.render(reply_request()).token_ids)


def test_it_streams_chat_completions(server):
    backend = _backend(server, api="chat")
    assert "".join(backend.stream(reply_request(attributes={"verbosity": 2}))) == "".join(REPLY)
    messages = server.requests[0]["body"]["messages"]
    assert server.requests[0]["path"] == "/v1/chat/completions"
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["verbosity"] == 2


def test_a_server_error_is_a_backend_error(server):
    with pytest.raises(BackendError, match="HTTP 500"):
        list(_backend(server, model="error").stream(reply_request()))


def test_a_slow_server_times_out(server):
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        list(_backend(server, model="slow", timeout=0.2).stream(reply_request()))
    assert time.monotonic() - started < 1.0


def test_no_text_is_an_empty_output_error(server):
    with pytest.raises(BackendEmptyOutput):
        list(_backend(server, model="empty").stream(reply_request()))


def test_an_unreachable_server_is_a_backend_error():
    backend = OpenAICompatibleBackend(base_url="http://127.0.0.1:9/v1", model="x", connect_timeout=0.5)
    with pytest.raises(BackendError):
        list(backend.stream(reply_request()))


def test_closing_the_stream_closes_the_connection(server):
    stream = _backend(server, model="endless").stream(reply_request())
    next(stream), next(stream)

    stream.close()

    assert server.disconnected.wait(5)
    assert server.sent_chunks < 2000


def test_get_backend_builds_openai_from_settings(settings, server):
    settings.LLM_MODEL_DIR = None
    settings.LLM_OPENAI_BASE_URL = server.base_url
    settings.LLM_OPENAI_MODEL = "karakuri"
    backend = backend_create("openai")
    assert backend.model_id == "openai:karakuri"
    assert "".join(backend.stream(reply_request())) == "".join(REPLY)
