"""Retrieval alone and a whole customer chat turn over a real WebSocket, with 1,000 FAQ entries loaded.

    .venv/bin/python bench/bench_chat.py [--entries 1000] [--turns 200]

Builds a throwaway SQLite database and index in a temporary directory: the 93 demo entries plus synthetic
variants up to --entries. Then it times `faq_search` over the demo dev-set queries, starts the real ASGI server
(daphne, embedded default: in-memory channel layer, in-process `template` replies) and times, per turn, from
sending `message.send` to receiving the bot's saved reply (`message.created`), plus the first `reply.token`.
Prints p50/p95 and peak memory. Targets (issue 2, 2 cores): retrieval p50 ≤ 20 ms, whole turn p50 ≤ 60 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import daphne_server, percentile  # noqa: E402


def synthetic_rows(n: int):
    from apps.faq.services import FaqRow

    demo = [json.loads(line) for line in (ROOT / "apps/faq/demo/faq.jsonl").read_text(encoding="utf-8").splitlines()]
    products = [
        "有機野菜セット",
        "冷凍食品",
        "日用品",
        "ベビー用品",
        "ペット用品",
        "飲料",
        "お米",
        "調味料",
        "化粧品",
        "文房具",
    ]
    rows = []
    for i in range(n):
        base = demo[i % len(demo)]
        if i < len(demo):
            ext, question, answer = base["id"], base["question"], base["answer"]
        else:
            product = products[(i // len(demo)) % len(products)]
            ext = f"{base['id']}-S{i}"
            question = f"{product}の場合、{base['question']}"
            answer = f"{product}につきましては、{base['answer']}"
        rows.append(
            FaqRow(
                external_id=ext,
                question=question,
                answer=answer,
                category=base["category"],
                tags=tuple(base.get("tags", [])),
                alt_questions=tuple(base.get("alt_questions", [])) if i < len(demo) else (),
            )
        )
    return rows


async def chat_turns(port: int, queries: list[str], turns: int) -> tuple[list[float], list[float]]:
    import websockets

    whole, first = [], []
    url = f"ws://127.0.0.1:{port}/ws/chat/"
    async with websockets.connect(url, origin=f"http://127.0.0.1:{port}") as ws:
        await ws.send(json.dumps({"type": "hello"}))
        await ws.recv()
        await ws.recv()
        for i in range(turns):
            text = queries[i % len(queries)]
            started = time.perf_counter()
            await ws.send(
                json.dumps({"type": "message.send", "text": text, "client_msg_id": f"b{i}"}, ensure_ascii=False)
            )
            first_at = None
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "reply.token" and first_at is None:
                    first_at = time.perf_counter()
                if event["type"] == "message.created" and event["message"]["role"] == "bot":
                    break
                if event["type"] == "error":
                    raise RuntimeError(event)
            done = time.perf_counter()
            whole.append((done - started) * 1000)
            if first_at is not None:
                first.append((first_at - started) * 1000)
    return whole, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="karakuri-bench-"))
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REPLY_EXECUTION")},
        "KARAKURI_DATA_DIR": str(data_dir),
        "FAQ_CACHE_DIR": os.environ.get("FAQ_CACHE_DIR", str(ROOT / "var" / "bench-cache")),
        "CHAT_RATE_LIMIT": "100000/minute",
        "DJANGO_SETTINGS_MODULE": "karakuri_cs.settings",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from apps.faq.index import index_update
    from apps.faq.search import faq_search
    from apps.faq.services import faq_entries_upsert

    call_command("migrate", verbosity=0)
    # In the embedded default the import itself updates the index (an eager Celery task after commit).
    started = time.perf_counter()
    faq_entries_upsert(rows=synthetic_rows(args.entries), actor="bench")
    report = index_update()
    build_s = time.perf_counter() - started
    print(
        f"import + index: {report.entries} entries in {build_s:.1f} s ({report.entries / build_s:.0f} entries/s;"
        f" embedding cache at {env['FAQ_CACHE_DIR']}: delete it to time embedding from scratch)"
    )

    dev = [json.loads(line) for line in (ROOT / "apps/faq/demo/devset.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [d["query"] for d in dev]
    faq_search(queries[0])  # load the index and the embedder
    latencies = []
    for q in queries:
        t = time.perf_counter()
        faq_search(q)
        latencies.append((time.perf_counter() - t) * 1000)
    print(
        f"retrieval alone ({len(queries)} dev queries, {args.entries} entries): "
        f"p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} ms"
    )

    with daphne_server() as port:
        asyncio.run(chat_turns(port, queries, 5))  # warm-up: the server loads the embedder and index
        whole, first = asyncio.run(chat_turns(port, queries, args.turns))
    print(
        f"whole turn over WebSocket ({args.turns} turns, template backend): "
        f"p50 {percentile(whole, 50):.1f} ms, p95 {percentile(whole, 95):.1f} ms; "
        f"first token p50 {percentile(first, 50):.1f} ms"
    )
    print(f"throughput (one client, sequential turns): {1000 / statistics.mean(whole):.1f} turns/s")
    print(
        f"peak memory of this process (index build + retrieval): "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
