import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from apps.llm.backends.hf import HfBackend
from apps.llm.backends.template import TemplateBackend, fallback_reply_text
from apps.llm.errors import BackendTimeout
from apps.llm.langchain import KarakuriChatModel, ReplyOutcome, ReplyPromptValue, Retrieval, reply_chain
from apps.llm.types import ChatTurn
from tests.llm.factories import reply_request, sample_faq


class FakeBackend:
    """A stand-in backend that replays fixed pieces (or fails), for the chain's own logic."""

    name = "fake"
    model_id = "fake-1"

    def __init__(self, pieces=(), error=None):
        self.pieces = list(pieces)
        self.error = error
        self.requests = []

    def stream(self, request):
        self.requests.append(request)
        yield from self.pieces
        if self.error is not None:
            raise self.error


def _retriever(calls):
    def retrieve(text):
        calls.append(text)
        return Retrieval(faq=sample_faq(), confident=True)

    return retrieve


def test_the_chat_model_streams_a_backend():
    model = KarakuriChatModel(backend=TemplateBackend())
    chunks = list(model.stream([HumanMessage("パスワードを忘れました")], faq=sample_faq()))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert len(chunks) > 3
    text = "".join(c.content for c in chunks)
    assert "ログイン画面" in text


def test_the_chat_model_invokes_with_metadata():
    message = KarakuriChatModel(backend=TemplateBackend()).invoke("こんにちは")
    assert isinstance(message, AIMessage)
    assert message.response_metadata["backend"] == "template"
    assert "担当者" in message.content  # no FAQ given: it offers a person


def test_a_reply_prompt_value_carries_the_whole_request():
    request = reply_request(
        history=[("user", "こんにちは"), ("assistant", "こんにちは。")], attributes={"verbosity": 2}
    )
    backend = FakeBackend(["はい。"])
    KarakuriChatModel(backend=backend).invoke(ReplyPromptValue.from_request(request))
    assert backend.requests == [request]
    assert ReplyPromptValue.from_request(request).to_string().startswith("<s>[INST] <<SYS>>")


def test_the_chain_retrieves_prompts_generates_and_checks():
    calls = []
    chain = reply_chain(retriever=_retriever(calls), backend=FakeBackend(["送料は全国一律", "550円（税込）です。"]))

    result = chain.invoke({"question": "送料はいくら？"})

    assert calls == ["送料はいくら？"]
    assert result["request"].faq[0].faq_id == "ACC-001"
    outcome = result["outcome"]
    assert isinstance(outcome, ReplyOutcome)
    assert outcome.reply == "送料は全国一律550円（税込）です。"
    assert not outcome.fallback and outcome.check.ok


def test_the_chain_streams_tokens_before_the_outcome():
    chain = reply_chain(retriever=_retriever([]), backend=TemplateBackend())
    chunks = list(chain.stream({"turns": [{"role": "user", "content": "パスワード"}]}))
    assert set(chunks[0]) == {"turns", "request", "prompt"}
    assert [set(c) for c in chunks[1:-1]] == [{"message"}] * (len(chunks) - 2)
    assert len(chunks) > 5
    assert set(chunks[-1]) == {"outcome"}


def test_a_reply_that_fails_its_checks_falls_back():
    chain = reply_chain(retriever=_retriever([]), backend=FakeBackend(["手続きできる。送料は600円だよ。"]))

    outcome = chain.invoke({"question": "送料は？"})["outcome"]

    assert outcome.fallback
    assert outcome.reply == fallback_reply_text(reply_request("送料は？"))
    assert {"keigo", "grounding"} <= {f["check"] for f in outcome.failures}
    assert outcome.generated == "手続きできる。送料は600円だよ。"


def test_a_backend_error_falls_back_with_the_reason():
    backend = FakeBackend(["送料は"], error=BackendTimeout("no token within 60 s"))
    outcome = reply_chain(retriever=_retriever([]), backend=backend).invoke({"question": "送料は？"})["outcome"]
    assert outcome.fallback
    assert outcome.failures == [{"check": "backend", "reason": "timeout: no token within 60 s"}]


def test_a_deployment_can_recompose_the_chain():
    chain = reply_chain(retriever=lambda text: ([], False), backend=TemplateBackend())
    result = chain.invoke({"turns": [ChatTurn("user", "宇宙旅行")], "is_first_reply": False})
    assert not result["request"].confident
    assert "担当者" in result["outcome"].reply


def test_closing_the_chain_stream_stops_generation(tiny_llama_dir):
    backend = HfBackend(tiny_llama_dir, device="cpu", context_tokens=2048, max_new_tokens=1000, eos_token_ids=[0])
    stream = reply_chain(retriever=_retriever([]), backend=backend).stream({"question": "送料は？"})
    for chunk in stream:
        if "message" in chunk:
            break

    stream.close()

    assert backend.last_run.cancelled
    assert not backend.last_run.thread.is_alive()
    assert backend.last_run.generated_tokens < 1000


@pytest.mark.asyncio
async def test_the_chain_streams_asynchronously():
    chain = reply_chain(retriever=_retriever([]), backend=TemplateBackend())
    pieces = [c["message"].content async for c in chain.astream({"question": "パスワード"}) if "message" in c]
    assert "".join(pieces).startswith("お問い合わせありがとうございます。")
