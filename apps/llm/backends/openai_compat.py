"""The `openai` backend: an OpenAI-compatible server (vLLM on Neuron, TGI, llama.cpp server) over HTTP.

Two ways to talk to it (LLM_OPENAI_API):

- `completions` (default): the prompt is rendered here, in KARAKURI's format with the attribute values, and sent
  to /completions — as token ids when LLM_MODEL_DIR gives the tokenizer (so the server cannot re-read a control
  token from text), else as text without the leading BOS, which the server adds itself.
- `chat`: OpenAI chat messages to /chat/completions; the server applies the model's chat template. The attribute
  values ride along as extra keys on each user message, which a server may or may not pass to its template.

Streaming is Server-Sent Events (`data: {...}` lines, `data: [DONE]` at the end). Closing the `stream()` generator
closes the HTTP response, which vLLM and TGI take as the client leaving and abort the request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from apps.llm.errors import BackendError, BackendTimeout
from apps.llm.prompt import RenderedPrompt, render_prompt
from apps.llm.streaming import clean_stream
from apps.llm.types import ReplyRequest


class OpenAICompatibleBackend:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        api: str = "completions",
        tokenizer: Any = None,
        context_tokens: int = 4096,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 1.0,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if api not in ("completions", "chat"):
            raise ValueError(f"api must be 'completions' or 'chat', not {api!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_id = f"{self.name}:{model}"
        self.api = api
        self.tokenizer = tokenizer
        self.context_tokens = context_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.timeout = timeout
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # `read` bounds the wait for each chunk (the first token included); the whole reply is bounded below.
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            trust_env=False,
        )

    def render(self, request: ReplyRequest) -> RenderedPrompt:
        return render_prompt(
            request, tokenizer=self.tokenizer, max_prompt_tokens=self.context_tokens - self.max_new_tokens
        )

    def stream(self, request: ReplyRequest) -> Iterator[str]:
        prompt = self.render(request)
        yield from clean_stream(self._generate(prompt), stops=prompt.stop, backend=self.name)

    def payload(self, prompt: RenderedPrompt) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.model,
            "stream": True,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(prompt.stop),
        }
        if self.api == "chat":
            body["messages"] = [dict(m) for m in prompt.messages]
            return "/chat/completions", body
        if prompt.token_ids is not None:
            body["prompt"] = list(prompt.token_ids)
        else:
            body["prompt"] = prompt.text.removeprefix("<s>")
        return "/completions", body

    def _generate(self, prompt: RenderedPrompt) -> Iterator[str]:
        path, body = self.payload(prompt)
        deadline = time.monotonic() + self.timeout
        try:
            with self._client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    detail = response.read().decode("utf-8", "replace")[:300]
                    raise BackendError(
                        f"{self.base_url}{path} answered HTTP {response.status_code}: {detail}", backend=self.name
                    )
                for data in _sse_data(response.iter_lines()):
                    if data == "[DONE]":
                        return
                    piece = self._piece(data)
                    if piece:
                        yield piece
                    if time.monotonic() > deadline:
                        raise BackendTimeout(f"reply took longer than {self.timeout:g} s", backend=self.name)
        except httpx.TimeoutException as exc:
            raise BackendTimeout(f"{self.base_url}{path}: {type(exc).__name__}", backend=self.name) from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.base_url}{path}: {type(exc).__name__}: {exc}", backend=self.name) from exc

    def _piece(self, data: str) -> str:
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise BackendError(f"not JSON in the event stream: {data[:100]!r}", backend=self.name) from None
        if "error" in event:
            raise BackendError(f"server error: {event['error']}", backend=self.name)
        choices = event.get("choices") or []
        if not choices:
            return ""
        choice = choices[0]
        if self.api == "chat":
            return (choice.get("delta") or {}).get("content") or ""
        return choice.get("text") or ""

    def close(self) -> None:
        self._client.close()


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each Server-Sent Event (multi-line data joined with newlines); comments skipped."""
    buffer: list[str] = []
    for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            buffer.append(value.removeprefix(" "))
    if buffer:
        yield "\n".join(buffer)
