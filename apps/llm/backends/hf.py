"""The `hf` backend: a transformers causal LM from a local directory, on CPU or CUDA.

Any Llama or Mixtral checkpoint works (KARAKURI LM 70B Chat, 8x7B Chat, or the tiny test models). Generation
runs in a worker thread and streams through TextIteratorStreamer; a StoppingCriteria looks at a cancel flag and
the deadline every step, so closing the `stream()` generator (customer gone, operator took over) stops the model
within one step instead of letting it run to max_new_tokens.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from apps.llm.errors import BackendError, BackendOutOfMemory, BackendTimeout, BackendUnavailable
from apps.llm.prompt import RenderedPrompt, load_tokenizer, render_prompt
from apps.llm.streaming import GenerationRun, clean_stream
from apps.llm.types import ReplyRequest

logger = logging.getLogger(__name__)

# How long a closed stream waits for the worker thread to notice the cancel flag (one model step).
_JOIN_SECONDS = 10.0


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(f"LLM_DEVICE={device} but no CUDA device is visible to torch", backend="hf")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


def reply_end_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a reply: the generation config's (one or a list) and the tokenizer's EOS."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in configured if isinstance(configured, list | tuple) else [configured]:
        if value is not None and value not in ids:
            ids.append(int(value))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def stopping_criteria(run: GenerationRun) -> Any:
    """A StoppingCriteriaList that ends generation once `run` is cancelled or past its deadline."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _CancelOrDeadline(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> Any:
            stop = run.should_stop(input_ids.shape[-1])
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_CancelOrDeadline()])


def reply_streamer(tokenizer: Any, end_ids: list[int], *, timeout: float, skip_prompt: bool) -> Any:
    """A TextIteratorStreamer that never shows an end-of-reply token, even one the tokenizer calls ordinary."""
    from transformers import TextIteratorStreamer

    class _ReplyStreamer(TextIteratorStreamer):
        def put(self, value: Any) -> None:
            is_prompt = self.skip_prompt and self.next_tokens_are_prompt
            if not is_prompt and value.numel() == 1 and int(value.reshape(-1)[0]) in end_ids:
                return
            super().put(value)

    return _ReplyStreamer(tokenizer, skip_prompt=skip_prompt, timeout=timeout, skip_special_tokens=True)


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        return isinstance(exc, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        return "out of memory" in str(exc).lower()


def raise_for_run(run: GenerationRun, *, backend: str, timeout: float) -> None:
    """After the stream ended: turn the worker thread's outcome into the matching BackendError."""
    if run.error is not None:
        if is_out_of_memory(run.error):
            raise BackendOutOfMemory(f"out of memory during generation: {run.error}", backend=backend) from run.error
        raise BackendError(f"generation failed: {type(run.error).__name__}: {run.error}", backend=backend) from (
            run.error
        )
    if run.timed_out:
        raise BackendTimeout(f"generation took longer than {timeout:g} s", backend=backend)


def iterate_streamer(streamer: Any, run: GenerationRun, *, backend: str, timeout: float) -> Iterator[str]:
    """Pieces from a TextIteratorStreamer fed by `run.thread`; cancels and joins the thread however it ends."""
    try:
        while True:
            try:
                piece = next(streamer)
            except StopIteration:
                break
            except queue.Empty:
                run.timed_out = True
                raise BackendTimeout(f"no token within {timeout:g} s", backend=backend) from None
            if piece:
                yield piece
    finally:
        if not run.finished.is_set():
            run.cancel.set()
        if run.thread is not None:
            run.thread.join(timeout=_JOIN_SECONDS)
            if run.thread.is_alive():
                logger.warning("%s generation thread still running %.0f s after cancel", backend, _JOIN_SECONDS)
    raise_for_run(run, backend=backend, timeout=timeout)


class HfBackend:
    """transformers AutoModelForCausalLM from a local directory; never reaches the hub."""

    name = "hf"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        context_tokens: int = 4096,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 1.0,
        timeout: float = 60.0,
        eos_token_ids: list[int] | None = None,
    ) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise BackendUnavailable(f"{model_dir} is not a model directory (no config.json)", backend=self.name)
        import torch
        from transformers import AutoModelForCausalLM

        self.device = resolve_device(device)
        self.tokenizer = load_tokenizer(str(model_dir))
        model: Any = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=resolve_dtype(dtype, self.device), local_files_only=True
        )
        self.model = model.to(self.device)
        self.model.eval()
        self._torch = torch
        self.model_id = f"{self.name}:{model_dir.name}"
        self.context_tokens = context_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.timeout = timeout
        self.eos_token_ids = eos_token_ids or reply_end_ids(self.model, self.tokenizer)
        self.last_run: GenerationRun | None = None

    def render(self, request: ReplyRequest) -> RenderedPrompt:
        return render_prompt(
            request, tokenizer=self.tokenizer, max_prompt_tokens=self.context_tokens - self.max_new_tokens
        )

    def stream(self, request: ReplyRequest) -> Iterator[str]:
        # A generator function, so that every failure (prompt included) surfaces while iterating.
        prompt = self.render(request)
        yield from clean_stream(self._generate(prompt), stops=prompt.stop, backend=self.name)

    def _generate(self, prompt: RenderedPrompt) -> Iterator[str]:
        torch = self._torch
        assert prompt.token_ids is not None
        input_ids = torch.tensor([prompt.token_ids], dtype=torch.long, device=self.device)
        run = GenerationRun(prompt_tokens=input_ids.shape[-1], deadline=time.monotonic() + self.timeout)
        self.last_run = run
        streamer = reply_streamer(self.tokenizer, self.eos_token_ids, timeout=self.timeout, skip_prompt=True)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": self.max_new_tokens,
            "streamer": streamer,
            "stopping_criteria": stopping_criteria(run),
            "eos_token_id": self.eos_token_ids,
            "pad_token_id": self.eos_token_ids[0],
            "do_sample": self.temperature > 0,
        }
        if self.temperature > 0:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # reported to the consumer, which raises the matching BackendError
                run.error = exc
                streamer.end()
            finally:
                run.finished.set()

        run.thread = threading.Thread(target=work, name="hf-generate", daemon=True)
        run.thread.start()
        yield from iterate_streamer(streamer, run, backend=self.name, timeout=self.timeout)
