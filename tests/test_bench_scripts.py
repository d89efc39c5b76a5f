"""The benchmark scripts run and print their figures (they are not run by anything else, and one stayed broken
for several versions after a helper it imported moved). Tiny sizes: what is checked is that each script works
end to end and reports what it says it reports, never how fast."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, tmp_path: Path) -> str:
    env = {**os.environ, "FAQ_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_export_benchmark_exports_and_masks_what_it_built(tmp_path):
    out = _run("bench/bench_export.py", "--examples", "300", tmp_path=tmp_path)
    selected = re.search(r"([\d,]+) examples selected → ([\d,]+) train \+ ([\d,]+) validation", out)
    assert selected, out
    assert selected[1] == "300"
    assert int(selected[2]) + int(selected[3]) == 300
    masked = re.search(r"([\d,]+) spans masked", out)
    assert masked and int(masked[1].replace(",", "")) > 0, out
    assert re.search(r"export: [\d.]+ s", out) and re.search(r"peak memory of the export process: \d+ MB", out), out


def test_the_retrieval_benchmark_reports_latency_build_rate_memory_and_recall(tmp_path):
    out = _run(
        "bench/bench_retrieval.py", "--sizes", "40", "--queries", "20", "--force-hnsw", "--json", tmp_path=tmp_path
    )
    [row] = json.loads(out.strip().splitlines()[-1])
    assert (row["entries"], row["queries"], row["index_kind"], row["build_cache"]) == (40, 20, "hnsw", "cold")
    assert row["query_p50_ms"] > 0 and row["build_cold_entries_per_s"] > 0 and row["peak_rss_mb"] > 0
    assert 0 < row["ann_recall@10"] <= 1 and 0 < row["recall@10_vs_exact"] <= 1
    assert set(row["ef_sweep"]) == {"as configured", "300", "500", "1000"}
