"""Tokens per second and time to first token of the bare `hf` backend.

    .venv/bin/python bench/bench_llm_backend.py [--arch llama|mixtral] [--runs 20] [--max-new-tokens 64]
    .venv/bin/python bench/bench_llm_backend.py --model-dir /models/karakuri-lm-70b-chat-v0.1 --device cuda

Without --model-dir it builds the tiny random test model (apps.llm.testing) in a temporary directory, so the
figures measure the backend's own overhead (prompt rendering, the generation thread, the streamer) rather than a
real model. Every run answers a demo FAQ question with its FAQ entry and generates exactly --max-new-tokens (the
end-of-reply token is disabled). Prints p50/p95 time to first token and per-run tokens/s, overall tokens/s and
peak memory. This is the baseline that the WebSocket pipeline benchmark compares against.

torch runs one intra-op thread by default here: the tiny model's matrices are far too small to gain from more,
and on a 2-core machine a second thread fights the generation thread and the streamer for the cores, which
turns ~800 tokens/s into ~40 with a wide spread. Use --threads 0 for torch's own choice with a real model.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=("llama", "mixtral"), default="llama")
    parser.add_argument("--model-dir", help="A real model directory instead of the tiny random one.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--context-tokens", type=int, default=2048)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (0: torch's default; see the note above)."
    )
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "karakuri_cs.settings")
    os.environ.setdefault("KARAKURI_DATA_DIR", tempfile.mkdtemp(prefix="bench-llm-"))
    import django

    django.setup()
    import torch
    from transformers.utils import logging as hf_logging

    from apps.llm.backends.hf import HfBackend
    from apps.llm.testing import build_tiny_model
    from apps.llm.types import ChatTurn, FaqContext, ReplyRequest
    from tests.llm.factories import demo_faq

    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model_dir:
        model_dir = Path(args.model_dir)
    else:
        model_dir = build_tiny_model(
            Path(tempfile.mkdtemp(prefix="bench-llm-model-")) / f"tiny-{args.arch}", arch=args.arch
        )
    # An id beyond any vocabulary as the only end-of-reply id: every run generates exactly max_new_tokens.
    backend = HfBackend(
        model_dir,
        device=args.device,
        context_tokens=args.context_tokens,
        max_new_tokens=args.max_new_tokens,
        timeout=600,
        eos_token_ids=[10**9],
    )
    entries = demo_faq()

    def request(i: int) -> ReplyRequest:
        entry: FaqContext = entries[i % len(entries)]
        return ReplyRequest(turns=(ChatTurn("user", entry.question),), faq=(entry,), confident=True)

    for i in range(args.warmup):
        list(backend.stream(request(i)))

    first_token_ms: list[float] = []
    tokens_per_s: list[float] = []
    prompt_tokens: list[int] = []
    total_tokens = 0
    started_all = time.perf_counter()
    for i in range(args.runs):
        req = request(args.warmup + i)
        prompt_tokens.append(backend.render(req).n_tokens)
        started = time.perf_counter()
        first = None
        for _piece in backend.stream(req):
            if first is None:
                first = time.perf_counter()
        elapsed = time.perf_counter() - started
        generated = backend.last_run.generated_tokens
        total_tokens += generated
        first_token_ms.append(((first or time.perf_counter()) - started) * 1000)
        tokens_per_s.append(generated / elapsed)
    wall = time.perf_counter() - started_all

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model: {backend.model_id} on {backend.device}, torch threads {torch.get_num_threads()}")
    print(
        f"runs: {args.runs}, new tokens per run: {args.max_new_tokens}, prompt tokens p50: {statistics.median(prompt_tokens):.0f}"
    )
    print(
        f"time to first token: p50 {percentile(first_token_ms, 50):.1f} ms, p95 {percentile(first_token_ms, 95):.1f} ms"
    )
    print(f"tokens/s per run:    p50 {percentile(tokens_per_s, 50):.1f}, p5 {percentile(tokens_per_s, 5):.1f}")
    print(f"tokens/s overall:    {total_tokens / wall:.1f} ({total_tokens} tokens in {wall:.2f} s)")
    print(f"peak memory:         {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
