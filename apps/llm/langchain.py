"""The backends as a langchain-core chat model, and the reply pipeline as a runnable chain.

    model = KarakuriChatModel(backend=get_backend())
    chain = reply_chain(retriever=my_search, model=model)
    for chunk in chain.stream({"question": "送料はいくらですか"}): ...

`reply_chain` is retriever → prompt → model → checks. The retriever is injected (any callable from the
customer's text to FAQ entries and a confidence verdict), because apps/llm never touches the database; the
chat app passes its own search. Each step adds keys to a dict, so a deployment can swap a step or add one:

    {"question" | "turns", ...} → +request (ReplyRequest) → +prompt (ReplyPromptValue) → +message (AIMessage,
    streamed token by token) +outcome (ReplyOutcome: the text to send, the check result, whether it fell back)

Model and checks share the last step so that closing the stream stops generation (see _GenerateAndCheckStep);
both halves are public on their own: KarakuriChatModel and reply_outcome().

A backend error or a failed check never raises out of the chain: the outcome carries the FAQ-based fallback
reply and the reason, like the chat pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableLambda, RunnablePassthrough
from langchain_core.runnables.utils import AddableDict
from pydantic import ConfigDict

from apps.llm.backends.template import fallback_reply_text
from apps.llm.checks import DEFAULT_MAX_CHARS, CheckResult, reply_check
from apps.llm.errors import BackendError
from apps.llm.prompt import render_prompt, system_text
from apps.llm.streaming import StopTextFilter
from apps.llm.types import (
    ChatTurn,
    FaqContext,
    ReplyBackend,
    ReplyRequest,
    reply_request_from_dict,
    reply_request_to_dict,
)

# Where a ReplyPromptValue's messages carry the full request (FAQ context, confidence, attributes).
REQUEST_KEY = "karakuri_reply_request"


class ReplyPromptValue(PromptValue):
    """A ReplyRequest as a langchain prompt value: messages for chat models, built-in format text for LLMs."""

    request: dict[str, Any]

    @classmethod
    def from_request(cls, request: ReplyRequest) -> ReplyPromptValue:
        return cls(request=reply_request_to_dict(request))

    @property
    def reply_request(self) -> ReplyRequest:
        return reply_request_from_dict(self.request)

    def to_string(self) -> str:
        return render_prompt(self.reply_request).text

    def to_messages(self) -> list[BaseMessage]:
        request = self.reply_request
        system = system_text(request.faq, confident=request.confident, is_first_reply=request.is_first_reply)
        messages: list[BaseMessage] = [SystemMessage(content=system, additional_kwargs={REQUEST_KEY: self.request})]
        for turn in request.turns:
            messages.append(HumanMessage(content=turn.content) if turn.role == "user" else AIMessage(turn.content))
        return messages


def request_from_messages(messages: Sequence[BaseMessage], **kwargs: Any) -> ReplyRequest:
    """The ReplyRequest behind `messages`: the one a ReplyPromptValue carried, else built from the messages.

    Plain messages have no FAQ context unless `faq=[FaqContext, ...]` is passed as a keyword (then `confident`
    defaults to True), so without it the model is told to say it cannot answer and to offer a person.
    """
    for message in messages:
        carried = message.additional_kwargs.get(REQUEST_KEY) if isinstance(message, SystemMessage) else None
        if carried:
            return reply_request_from_dict(carried)
    turns = [
        ChatTurn(role="user" if isinstance(m, HumanMessage) else "assistant", content=str(m.content))
        for m in messages
        if isinstance(m, HumanMessage | AIMessage)
    ]
    faq = tuple(kwargs.get("faq") or ())
    return ReplyRequest(
        turns=tuple(turns),
        faq=faq,
        confident=bool(kwargs.get("confident", bool(faq))),
        is_first_reply=bool(kwargs.get("is_first_reply", not any(t.role == "assistant" for t in turns))),
        attributes=kwargs.get("attributes"),
    )


class KarakuriChatModel(BaseChatModel):
    """Any ReplyBackend (template, hf, neuron, openai) as a langchain-core chat model with streaming.

    Stopping the stream early (break, close) closes the backend's generator, which stops generation.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backend: Any

    @property
    def _llm_type(self) -> str:
        return f"karakuri-{self.backend.name}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"backend": self.backend.name, "model_id": self.backend.model_id}

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = request_from_messages(messages, **kwargs)
        pieces = self.backend.stream(request)
        text_filter = StopTextFilter(stop or ())
        try:
            for piece in pieces:
                out, stopped = text_filter.feed(piece) if stop else (piece, False)
                if out:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=out))
                    if run_manager:
                        run_manager.on_llm_new_token(out, chunk=chunk)
                    yield chunk
                if stopped:
                    break
            else:
                if rest := text_filter.flush():
                    yield ChatGenerationChunk(message=AIMessageChunk(content=rest))
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                response_metadata={"backend": self.backend.name, "model_id": self.backend.model_id},
                chunk_position="last",
            )
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = ""
        metadata: dict[str, Any] = {}
        for chunk in self._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
            text += chunk.text
            metadata.update(chunk.message.response_metadata)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, response_metadata=metadata))])


# --- The reply chain ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retrieval:
    """What a retriever returns: FAQ entries best first, and whether retrieval is confident in them."""

    faq: Sequence[FaqContext]
    confident: bool


@dataclass(frozen=True)
class ReplyOutcome:
    """The chain's verdict: `reply` is what to send (the generated text, or the fallback when it failed)."""

    reply: str
    generated: str
    check: CheckResult
    fallback: bool
    failures: list[dict[str, str]] = field(default_factory=list)


Retriever = Callable[[str], Retrieval | tuple[Sequence[FaqContext], bool]]


def _request_step(retriever: Retriever) -> Callable[[Mapping[str, Any]], ReplyRequest]:
    def build(inputs: Mapping[str, Any]) -> ReplyRequest:
        if "turns" in inputs:
            turns = tuple(t if isinstance(t, ChatTurn) else ChatTurn(**t) for t in inputs["turns"])
        else:
            turns = (ChatTurn(role="user", content=str(inputs["question"])),)
        found = retriever(turns[-1].content)
        faq, confident = (found.faq, found.confident) if isinstance(found, Retrieval) else found
        return ReplyRequest(
            turns=turns,
            faq=tuple(faq),
            confident=bool(confident),
            is_first_reply=bool(inputs.get("is_first_reply", True)),
            attributes=inputs.get("attributes"),
        )

    return build


def _merged(chunks: Iterator[Mapping[str, Any]]) -> AddableDict:
    merged = AddableDict()
    for chunk in chunks:
        merged = merged + AddableDict(chunk)
    return merged


def _backend_error_chunk(exc: BackendError) -> AddableDict:
    # Recorded, not raised: the checks step turns it into the fallback reply.
    error = {"check": "backend", "reason": f"{exc.kind}: {exc}"[:500]}
    return AddableDict(message=AIMessageChunk(content="", response_metadata={"backend_error": error}))


class _GenerateAndCheckStep:
    """Passes the request and prompt on, streams the model's chunks under "message", then adds "outcome".

    One generator step, last in the chain, on purpose: when a stream is closed early, langchain drains the input
    of every step still open (to report it to tracing), so a checks step after the model step would pull the rest
    of the generation through. Last in the sequence, this generator is simply closed, which closes the backend's
    generator and stops the model. (RunnablePassthrough.assign would not do either: it runs its mapper in an
    executor that keeps pulling.)
    """

    def __init__(self, model: BaseChatModel, max_chars: int) -> None:
        self.model = model
        self.max_chars = max_chars

    def _outcome(self, inputs: Mapping[str, Any], message: AIMessageChunk | None) -> AddableDict:
        return AddableDict(outcome=reply_outcome(inputs["request"], message, max_chars=self.max_chars))

    def transform(self, chunks: Iterator[Mapping[str, Any]]) -> Iterator[AddableDict]:
        inputs = _merged(chunks)
        yield inputs
        message: Any = None
        stream: Any = self.model.stream(inputs["prompt"])
        try:
            for chunk in stream:
                message = chunk if message is None else message + chunk
                yield AddableDict(message=chunk)
        except BackendError as exc:
            error = _backend_error_chunk(exc)
            message = error["message"] if message is None else message + error["message"]
            yield error
        finally:
            stream.close()
        yield self._outcome(inputs, message)

    async def atransform(self, chunks: AsyncIterator[Mapping[str, Any]]) -> AsyncIterator[AddableDict]:
        inputs: Any = AddableDict()
        async for piece in chunks:
            inputs = inputs + AddableDict(piece)
        yield inputs
        message: Any = None
        stream: Any = self.model.astream(inputs["prompt"])
        try:
            async for chunk in stream:
                message = chunk if message is None else message + chunk
                yield AddableDict(message=chunk)
        except BackendError as exc:
            error = _backend_error_chunk(exc)
            message = error["message"] if message is None else message + error["message"]
            yield error
        finally:
            await stream.aclose()
        yield self._outcome(inputs, message)


def reply_outcome(
    request: ReplyRequest, message: BaseMessage | None, *, max_chars: int = DEFAULT_MAX_CHARS
) -> ReplyOutcome:
    """Check a generated message; the FAQ-based fallback reply when the check or the backend failed."""
    generated = str(message.content).strip() if message is not None else ""
    error = message.response_metadata.get("backend_error") if message is not None else None
    check = CheckResult([error]) if error else reply_check(generated, request, max_chars=max_chars)
    if check.ok:
        return ReplyOutcome(reply=generated, generated=generated, check=check, fallback=False)
    return ReplyOutcome(
        reply=fallback_reply_text(request),
        generated=generated,
        check=check,
        fallback=True,
        failures=list(check.failures),
    )


def reply_chain(
    *,
    retriever: Retriever,
    model: BaseChatModel | None = None,
    backend: ReplyBackend | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Runnable[dict[str, Any], dict[str, Any]]:
    """retriever → prompt → model → checks, as one runnable; pass `model` or a `backend` to wrap.

    Input: {"question": str} or {"turns": [ChatTurn | {"role", "content"}, ...]}, optionally "is_first_reply"
    and "attributes". Output: the input plus "request", "prompt", "message" and "outcome" (a ReplyOutcome).
    `.stream()` yields the "message" chunks as the model produces them.
    """
    if model is None:
        if backend is None:
            raise ValueError("reply_chain needs a model or a backend")
        model = KarakuriChatModel(backend=backend)
    return (
        RunnablePassthrough.assign(request=RunnableLambda(_request_step(retriever), name="retrieve"))
        | RunnablePassthrough.assign(
            prompt=itemgetter("request") | RunnableLambda(ReplyPromptValue.from_request, name="prompt")
        )
        | _generator(_GenerateAndCheckStep(model, max_chars), name="generate_and_check")
    )


def _generator(step: Any, *, name: str) -> RunnableGenerator:
    return RunnableGenerator(step.transform, step.atransform, name=name)
