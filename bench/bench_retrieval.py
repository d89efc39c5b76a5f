"""Retrieval benchmark: query latency, index build rate, peak memory and approximate-index recall by KB size.

    python bench/bench_retrieval.py                       # 1,000 entries (issue 2: p50 ≤ 20 ms)
    python bench/bench_retrieval.py --sizes 1000,10000,100000 [--embedder use] [--queries 300]

Each size runs in its own subprocess (so peak RSS is per size) on a throwaway SQLite database, with synthetic
FAQ entries made from the demo FAQ (every entry's text is unique: the demo question/answer with a synthetic
product name and number woven in). Queries are the demo dev set's customer questions, each asked once.

Printed per size:
- build: entries per second for a cold build (empty embedding cache: every text goes through the model) and
  for a rebuild over unchanged text (everything from the cache);
- query latency p50/p95 of `faq_search` (query embedding, BM25, FAISS, fusion and the database check);
- recall@10 against exact search when the index is approximate (above FAQ_INDEX_EXACT_MAX vectors, or always
  with --force-hnsw): for the HNSW graphs alone (their top 10 rows against brute force over the same vectors)
  and end to end (the fused top 10 from the candidates against the fused top 10 over every entry);
- peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._retrieval_setup import DEMO_DEVSET, DEMO_FAQ, django_setup, read_jsonl  # noqa: E402

BRANDS = ["さくら", "あおば", "ひかり", "こだま", "ゆずの木", "くすのき", "はるかぜ", "つばめ", "もみじ", "すずらん"]
GOODS = [
    "ドレッシング",
    "洗剤",
    "冷凍餃子",
    "お米",
    "牛乳",
    "ヨーグルト",
    "コーヒー豆",
    "ティッシュ",
    "おむつ",
    "ドッグフード",
    "野菜セット",
    "食パン",
    "ミネラルウォーター",
    "シャンプー",
    "キッチンペーパー",
    "冷凍うどん",
    "味噌",
    "卵",
    "緑茶",
    "バナナ",
]


def synthetic_rows(n: int):
    from apps.faq.services import FaqRow

    demo = read_jsonl(DEMO_FAQ)
    rng = random.Random(42)
    rows = []
    for i in range(n):
        base = demo[i % len(demo)]
        product = f"{rng.choice(BRANDS)}{rng.choice(GOODS)}{i}号"
        rows.append(
            FaqRow(
                external_id=f"SYN-{i:06d}",
                question=f"{product}について：{base['question']}",
                answer=f"{product}の場合のご案内です。{base['answer']}",
                category=base["category"],
                alt_questions=tuple(f"{product} {a}" for a in base.get("alt_questions", [])[:2]),
            )
        )
    return rows


def run_one(size: int, queries: int, force_hnsw: bool, cache_dir: str | None) -> dict:
    # Cold by default: a fresh embedding cache, so every text goes through the model.
    os.environ["FAQ_CACHE_DIR"] = cache_dir or str(Path(tempfile.mkdtemp(prefix="karakuri-bench-cache-")) / "cache")
    cache_was_there = (Path(os.environ["FAQ_CACHE_DIR"]) / "embeddings.sqlite3").exists()
    if force_hnsw:
        os.environ["FAQ_INDEX_EXACT_MAX"] = "0"
    django_setup()
    from django.conf import settings

    import apps.faq.services as services
    from apps.faq.index import index_update, live_index
    from apps.faq.search import faq_search, score_entries
    from apps.faq.text import text_normalize

    services._index_update_after_commit = lambda revision: None  # the build is timed explicitly below
    rows = synthetic_rows(size)
    for start in range(0, size, 5000):
        services.faq_entries_upsert(rows=rows[start : start + 5000], actor="bench")

    # Load the models (the PyTorch ones for batches too: ~2-3 s, once per process) and compile the user
    # dictionary first: the rate is for embedding and indexing. Straight to the models, past the cache.
    from apps.faq.embedders import embedder_get
    from apps.faq.text import text_tokens

    for part in embedder_get().parts:
        part.embed(["ウォームアップ"] * 16, "passage")
    text_tokens("ウォームアップ")
    cold = index_update()
    warm = index_update(from_scratch=True)
    dev = [q["query"] for q in read_jsonl(DEMO_DEVSET)]
    faq_search("ウォームアップ")
    latencies = []
    for q in (dev * (1 + queries // max(1, len(dev))))[:queries]:
        latencies.append(faq_search(q).took_ms)

    index = live_index.get()
    recall = ann_recall = ef_sweep = None
    if index.manifest["index_kind"] == "hnsw":
        # The FAISS graphs alone: their top 10 rows against a brute-force top 10 over the same vectors, at the
        # efSearch faq_search uses (each graph's own, by its size) and at fixed values.
        ef_sweep = _ef_sweep(index, [embedder_get().embed_query(text_normalize(q)) for q in dev[:100]])
        ann_recall = ef_sweep["as configured"]["recall@10"]
        # End to end: the fused top 10 from the candidates against the fused top 10 over every entry.
        w_s, w_p = settings.FAQ_FUSION_SPARSE_WEIGHT, settings.FAQ_FUSION_PHRASE_WEIGHT
        found = total = 0
        for q in dev[:100]:
            text = text_normalize(q)
            tops = []
            for exhaustive in (True, False):
                s = score_entries(index, text, exhaustive=exhaustive)
                fused = (1 - w_s) * (w_p * s.phrase + (1 - w_p) * s.doc) + w_s * s.sparse
                tops.append({int(s.positions[i]) for i in np.argsort(-fused)[:10]})
            found += len(tops[0] & tops[1])
            total += len(tops[0])
        recall = found / total
    return {
        "entries": size,
        "embedder": settings.FAQ_EMBEDDER,
        "index_kind": index.manifest["index_kind"],
        "vectors": index.manifest["phrase_vectors"] + index.manifest["entries"],
        "build_cold_entries_per_s": size / cold.seconds,
        "build_cache": "warm" if cache_was_there else "cold",
        "load_avg": os.getloadavg()[0],
        "build_cold_s": cold.seconds,
        "texts_embedded_cold": cold.embedded,
        "rebuild_cached_entries_per_s": size / warm.seconds,
        "query_p50_ms": float(np.percentile(latencies, 50)),
        "query_p95_ms": float(np.percentile(latencies, 95)),
        "queries": len(latencies),
        "recall@10_vs_exact": recall,
        "ann_recall@10": ann_recall,
        "ef_sweep": ef_sweep,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _ef_sweep(index, query_vectors: list[np.ndarray]) -> dict:
    """HNSW recall@10 against brute force, and the time of a query's two graph searches, per efSearch value:
    "as configured" (each graph's own, as faq_search searches it), then fixed values.

    Searched for CANDIDATES rows as faq_search does (FAISS then explores at least that many), top 10 compared.
    """
    from apps.faq.embedders import embedder_get
    from apps.faq.index import HNSW_EF_SEARCH_MAX
    from apps.faq.search import CANDIDATES, _one_thread

    embedder = embedder_get()
    pairs = [
        (index.phrase_index, index.phrase_vectors(), "query"),
        (index.doc_index, index.doc_vectors(), "passage"),
    ]
    # Each query as each graph holds its vectors (the models' blocks of that kind of text), and its exact top 10.
    per_graph = [[embedder.for_kind(q, kind)[None, :] for _, _, kind in pairs] for q in query_vectors]
    exact = [
        [set(np.argsort(-(vectors @ v[0]))[:10].tolist()) for (_, vectors, _), v in zip(pairs, vs, strict=True)]
        for vs in per_graph
    ]
    graphs = [ann for ann, _, _ in pairs if hasattr(ann, "hnsw")]
    configured = [ann.hnsw.efSearch for ann in graphs]
    sweep = {}
    try:
        for ef in ("as configured", CANDIDATES, 500, HNSW_EF_SEARCH_MAX):
            for ann, own in zip(graphs, configured, strict=True):
                ann.hnsw.efSearch = own if ef == "as configured" else ef
            found = total = 0
            times = []
            with _one_thread():
                for vs, tops in zip(per_graph, exact, strict=True):
                    started = time.perf_counter()
                    rows = [ann.search(v, CANDIDATES)[1][0] for (ann, _, _), v in zip(pairs, vs, strict=True)]
                    times.append((time.perf_counter() - started) * 1000)
                    for got, top in zip(rows, tops, strict=True):
                        found += len(top & set(got[:10].tolist()))
                        total += len(top)
            sweep[ef] = {"recall@10": found / total, "search_p50_ms": float(np.percentile(times, 50))}
        sweep["as configured"]["efSearch"] = "/".join(map(str, configured))
    finally:
        for ann, own in zip(graphs, configured, strict=True):
            ann.hnsw.efSearch = own
    return sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000", help="comma-separated entry counts (default 1000)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--embedder", default=None, help="FAQ_EMBEDDER value (default: the setting)")
    parser.add_argument("--force-hnsw", action="store_true", help="use the approximate index at every size")
    parser.add_argument(
        "--cache-dir", help="reuse this embedding cache (skips the cold build: for re-measuring latency quickly)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embedder:
        os.environ["FAQ_EMBEDDER"] = args.embedder
    if args.one:
        print(json.dumps(run_one(args.one, args.queries, args.force_hnsw, args.cache_dir)))
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        command = [sys.executable, __file__, "--one", str(size), "--queries", str(args.queries)]
        if args.force_hnsw:
            command.append("--force-hnsw")
        if args.cache_dir:
            command += ["--cache-dir", args.cache_dir]
        started = time.perf_counter()
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        result["wall_s"] = time.perf_counter() - started
        results.append(result)
        if not args.json:
            recall, ann = result["recall@10_vs_exact"], result["ann_recall@10"]
            print(
                f"{size:>7} entries ({result['embedder']}, {result['index_kind']}, {result['vectors']} vectors): "
                f"query p50 {result['query_p50_ms']:.1f} ms  p95 {result['query_p95_ms']:.1f} ms | "
                f"build {result['build_cold_entries_per_s']:.1f} entries/s {result['build_cache']} "
                f"({result['build_cold_s']:.0f} s), {result['rebuild_cached_entries_per_s']:.0f} entries/s cached | "
                f"recall@10 vs exact: HNSW {'-' if ann is None else f'{ann:.3f}'}, "
                f"fused {'-' if recall is None else f'{recall:.3f}'} | "
                f"peak RSS {result['peak_rss_mb']:.0f} MB | load avg {result['load_avg']:.1f}",
                flush=True,
            )
            for ef, figures in (result["ef_sweep"] or {}).items():
                label = f"{ef} ({figures['efSearch']})" if "efSearch" in figures else ef
                print(
                    f"          efSearch {label}: HNSW recall@10 {figures['recall@10']:.3f}, "
                    f"graph searches p50 {figures['search_p50_ms']:.1f} ms",
                    flush=True,
                )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
