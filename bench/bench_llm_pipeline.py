"""What the chat pipeline adds on top of the bare `hf` backend, over a real WebSocket.

    .venv/bin/python bench/bench_llm_pipeline.py [--turns 40] [--arch llama|mixtral] [--max-new-tokens 256]

Builds the tiny random model (apps.llm.testing) and the demo FAQ index in a temporary directory, then answers
each dev-set question twice, one right after the other:
  1. bare: `backend.stream(request)` in this process (request built beforehand, retrieval not timed);
  2. pipeline: a real daphne server (embedded default, REPLY_BACKEND=hf), timed by a WebSocket client from
     `message.send` to the first `reply.token` and to the last one.
Prints time to first token p50/p95 for both and the difference (issue 3 target: p50 ≤ 10 ms added), with and
without the retrieval step, and tokens (stream pieces) per second through the pipeline against the bare
backend (target ≥ 95%): the pieces the model generated (from the reply's provenance) over the time from the
first to the last `reply.token` event at the client. torch runs one thread in both (see bench_llm_backend.py for why).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import daphne_server, percentile  # noqa: E402


async def pipeline_turn(port: int, text: str, client_msg_id: str) -> dict:
    """One question in a new conversation (as in the bare run: a growing history would lengthen the prompt)."""
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/chat/", origin=f"http://127.0.0.1:{port}") as ws:
        await ws.send(json.dumps({"type": "hello"}))
        await ws.recv()
        await ws.recv()
        sent = time.perf_counter()
        await ws.send(json.dumps({"type": "message.send", "text": text, "client_msg_id": client_msg_id}))
        first = last = None
        pieces = 0
        while True:
            event = json.loads(await ws.recv())
            if event["type"] == "reply.token":
                last = time.perf_counter()
                first = first or last
                pieces += 1
            elif event["type"] == "message.created" and event["message"]["role"] == "bot":
                break
            elif event["type"] == "error":
                raise RuntimeError(event)
    return {"sent": sent, "first": first, "last": last, "pieces": pieces}


def bare_turn(backend, request) -> dict:
    started = time.perf_counter()
    first = last = None
    pieces = 0
    for _ in backend.stream(request):
        last = time.perf_counter()
        first = first or last
        pieces += 1
    return {"sent": started, "first": first, "last": last, "pieces": pieces}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--arch", choices=("llama", "mixtral"), default="llama")
    # The random tiny model streams its text in few, long pieces (it rarely writes a word boundary): at 64 new
    # tokens a reply is ~6 pieces in ~50 ms, and pieces/s then measures the jitter of two socket deliveries
    # more than throughput. 256 tokens make the stream long enough to measure a rate.
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="karakuri-bench-llm-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "karakuri_cs.settings",
            "KARAKURI_DATA_DIR": str(data_dir),
            "FAQ_CACHE_DIR": os.environ.get("FAQ_CACHE_DIR", str(ROOT / "var" / "bench-cache")),
            "CHAT_RATE_LIMIT": "100000/minute",
            "CHAT_NEW_CONVERSATION_RATE_LIMIT": "100000/minute",
            "LOG_LEVEL": "WARNING",
            "OMP_NUM_THREADS": "1",
            "REPLY_BACKEND": "hf",
            "LLM_MAX_NEW_TOKENS": str(args.max_new_tokens),
            "LLM_CONTEXT_TOKENS": "2048",
        }
    )
    for name in ("DATABASE_URL", "REDIS_URL", "REPLY_EXECUTION"):
        os.environ.pop(name, None)
    from apps.llm.testing import build_tiny_model

    os.environ["LLM_MODEL_DIR"] = str(build_tiny_model(data_dir / f"tiny-{args.arch}", arch=args.arch))

    import django

    django.setup()
    import torch
    from django.core.management import call_command

    from apps.chat.pipeline import reply_request_preview
    from apps.faq.importers import faq_import_file
    from apps.faq.index import index_update
    from apps.llm.backends import get_backend

    torch.set_num_threads(1)
    call_command("migrate", verbosity=0)
    faq_import_file(ROOT / "apps/faq/demo/faq.jsonl")
    index_update()
    dev = [json.loads(line) for line in (ROOT / "apps/faq/demo/devset.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [d["query"] for d in dev if d["relevant"]][: args.turns]

    backend = get_backend()
    list(backend.stream(reply_request_preview(question=queries[0])))  # warm-up
    bare, turns = [], []
    with daphne_server() as port:
        for i, text in enumerate(queries[:3]):  # warm-up: model, embedder and index load in the server
            asyncio.run(pipeline_turn(port, text, f"w{i}"))
        # Bare and pipeline alternate question by question, so both see the same machine load (other processes
        # on these 2 cores move both figures by more than the pipeline's own cost).
        for i, text in enumerate(queries):
            bare.append(bare_turn(backend, reply_request_preview(question=text)))
            turns.append(asyncio.run(pipeline_turn(port, text, f"p{i}")))
    bare_first = [(t["first"] - t["sent"]) * 1000 for t in bare]
    bare_rate = [(t["pieces"] - 1) / (t["last"] - t["first"]) for t in bare if t["pieces"] > 1]

    from apps.chat.models import Message

    provenances = [m.provenance for m in Message.objects.filter(role="bot").order_by("-id")[: len(turns)]]
    provenances.reverse()  # in question order, like `turns`
    timings = [p["timings_ms"] for p in provenances]
    events_per_reply = statistics.median(t["pieces"] for t in turns)
    for turn, provenance in zip(turns, provenances, strict=True):
        # Pieces the model generated (the server may send several in one reply.token event).
        turn["pieces"] = provenance["generated_pieces"]
    retrieval_ms = [t["retrieval"] for t in timings]
    server_first_ms = [t["first_token"] for t in timings if t["first_token"] is not None]
    pipe_first = [(t["first"] - t["sent"]) * 1000 for t in turns if t["first"]]
    pipe_rate = [(t["pieces"] - 1) / (t["last"] - t["first"]) for t in turns if t["pieces"] > 1]
    p50 = {"bare": percentile(bare_first, 50), "pipe": percentile(pipe_first, 50)}
    print(f"tiny {args.arch}, {len(queries)} questions, up to {args.max_new_tokens} new tokens, 1 torch thread")
    print(f"time to first token, bare backend: p50 {p50['bare']:.1f} ms, p95 {percentile(bare_first, 95):.1f} ms")
    print(
        f"time to first token, pipeline over WebSocket: p50 {p50['pipe']:.1f} ms, "
        f"p95 {percentile(pipe_first, 95):.1f} ms"
    )
    print(
        f"added by the pipeline: p50 {p50['pipe'] - p50['bare']:.1f} ms including retrieval "
        f"(retrieval p50 {percentile(retrieval_ms, 50):.1f} ms), "
        f"{p50['pipe'] - p50['bare'] - percentile(retrieval_ms, 50):.1f} ms without"
    )
    print(
        f"  of which inside the server's pipeline (start of reply_generate to first token): "
        f"p50 {percentile(server_first_ms, 50):.1f} ms; the rest is the socket, saving the message and scheduling"
    )
    paired_added = [
        (p["first"] - p["sent"] - b["first"] + b["sent"]) * 1000 - t["retrieval"]
        for b, p, t in zip(bare, turns, timings, strict=True)
        if p["first"] and b["first"]
    ]
    print(f"  paired by question: added p50 {percentile(paired_added, 50):.1f} ms without retrieval")
    bare_median, pipe_median = statistics.median(bare_rate), statistics.median(pipe_rate)
    paired_ratio = [
        ((p["pieces"] - 1) / (p["last"] - p["first"])) / ((b["pieces"] - 1) / (b["last"] - b["first"]))
        for b, p in zip(bare, turns, strict=True)
        if p["pieces"] > 1 and b["pieces"] > 1
    ]
    server_rate = [
        (p["generated_pieces"] - 1) / ((p["timings_ms"]["last_token"] - p["timings_ms"]["first_token"]) / 1000)
        for p in provenances
        if p["generated_pieces"] > 1
    ]
    print(
        f"  generated in the server (first to last piece): {statistics.median(server_rate):.0f} pieces/s; "
        f"pieces per reply p50 {statistics.median(p['generated_pieces'] for p in provenances):.0f}, "
        f"in reply.token events p50 {events_per_reply:.0f}"
    )
    print(
        f"pieces per second: bare {bare_median:.0f}, pipeline {pipe_median:.0f} "
        f"({100 * pipe_median / bare_median:.0f}% of bare; paired by question: p50 "
        f"{100 * statistics.median(paired_ratio):.0f}%)"
    )


if __name__ == "__main__":
    main()
