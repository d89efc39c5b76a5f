"""Hybrid search as the reply pipeline uses it: right FAQ first, honest confidence, never an exception."""

import json
import threading
from io import StringIO

import pytest
from django.core.management import call_command

from apps.faq.index import index_update
from apps.faq.search import SearchResult, faq_search
from apps.faq.services import FaqRow, faq_entries_upsert


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ｱﾌﾟﾘ起動しない", "APP-002"),
        ("家族それぞれアカウント必要ですか", "ACC-009"),
        ("新規登録のやり方おしえて", "ACC-003"),
        ("発送前ならキャンセルできますか", "ORD-002"),
        ("配達日をあさってに変更したい", "ORD-004"),
        ("キャリアメールからGmailに変更したいです", "ACC-004"),
    ],
)
def test_it_ranks_the_right_faq_first_for_a_customer_wording(demo_faq, query, expected):
    result = faq_search(query)
    assert result.hits[0].external_id == expected
    assert result.confident
    hit = result.hits[0]
    assert hit.question == demo_faq[expected].question and hit.answer == demo_faq[expected].answer
    assert hit.dense_score is not None and hit.score >= result.hits[1].score


def test_it_is_not_confident_when_no_faq_answers(demo_faq):
    for query in ("今日の東京の天気は？", "株主優待ってありますか"):
        result = faq_search(query)
        assert result.hits, "still a ranked list, for the operator's eyes"
        assert not result.confident


def test_sparse_score_is_none_when_no_term_matches(demo_faq):
    hit = faq_search("😀🎉").hits[0]
    assert hit.sparse_score is None


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "a" * 10_000,
        "パスワード" * 2_000,
        "😀🎉🙏",
        "!!!???",
        "How do I reset my password?",
        "ログインcan't できない",
        "\x00\x01ログイン\x7f\u202e",
        None,
    ],
)
def test_it_never_raises_on_odd_input(demo_faq, query):
    result = faq_search(query)
    assert isinstance(result, SearchResult)
    assert len(result.hits) <= 5
    if not (query or "").strip():
        assert result.hits == [] and not result.confident


@pytest.mark.parametrize("k", [0, -3, 1, 50, 10**9, "7"])
def test_it_clamps_k(demo_faq, k):
    result = faq_search("返品したい", k=k)
    assert 1 <= len(result.hits) <= 50


def test_it_returns_nothing_on_an_empty_knowledge_base(db, index_dir):
    result = faq_search("パスワード忘れた")
    assert result.hits == [] and result.confident is False and result.kb_revision == 0


def test_inactive_entries_are_never_returned_even_before_the_index_catches_up(demo_faq):
    row = demo_faq["ACC-001"]
    faq_entries_upsert(rows=[FaqRow(**{**row.__dict__, "is_active": False})])
    # No index_update yet: the index still holds ACC-001, the database says it is inactive.
    assert "ACC-001" not in [h.external_id for h in faq_search("パスワード忘れた", k=10).hits]
    index_update()
    assert "ACC-001" not in [h.external_id for h in faq_search("パスワード忘れた", k=10).hits]


def test_it_is_safe_to_call_from_many_threads(transactional_db, demo_faq):
    # Committed data (transactional_db): the worker threads use their own database connections.
    queries = ["パスワード忘れた", "返品したいです", "アプリある？", "領収証ほしいです"] * 3
    expected = {q: faq_search(q).hits[0].external_id for q in queries}
    errors, seen = [], {}

    def worker(q):
        try:
            seen[q] = faq_search(q).hits[0].external_id
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    from django.db import connections

    threads = [threading.Thread(target=worker, args=(q,)) for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    connections.close_all()
    assert not errors and seen == expected


def test_eval_retrieval_reports_ranking_latency_and_confidence(demo_faq, tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text(
        "\n".join(
            json.dumps(r, ensure_ascii=False)
            for r in [
                {"query": "ｱﾌﾟﾘ起動しない", "relevant": ["APP-002"]},
                {"query": "新規登録のやり方おしえて", "relevant": ["ACC-003"]},
                {"query": "今日の東京の天気は？", "relevant": []},
            ]
        ),
        encoding="utf-8",
    )
    out = StringIO()
    call_command("eval_retrieval", str(dev), "--json", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["hit@1"] == 1.0 and figures["mrr@10"] == 1.0
    assert figures["unanswerable"] == 1 and figures["unanswerable_declined"] == 1.0
    assert figures["precision_when_answered"] == 1.0
    assert figures["latency_ms_p50"] > 0

    out = StringIO()
    call_command("eval_retrieval", str(dev), stdout=out)
    assert "hit@5" in out.getvalue() and "p95" in out.getvalue()


def test_eval_retrieval_names_a_bad_line(db, index_dir, tmp_path):
    from django.core.management.base import CommandError

    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"query": "a", "relevant": []}\nnot json\n', encoding="utf-8")
    with pytest.raises(CommandError, match=":2:"):
        call_command("eval_retrieval", str(dev))


def test_eval_retrieval_refuses_labels_the_knowledge_base_does_not_have(demo_faq, tmp_path):
    from django.core.management.base import CommandError

    dev = tmp_path / "dev.jsonl"
    dev.write_text(
        '{"query": "のし", "relevant": ["GFT-001"]}\n{"query": "送料", "relevant": ["DLV-001"]}\n', encoding="utf-8"
    )
    with pytest.raises(CommandError, match=r"1 FAQ ids .* \(GFT-001\): import the FAQ"):
        call_command("eval_retrieval", str(dev))


def test_rebuild_index_reports_entries_per_second(db, index_dir):
    from tests.faq.conftest import demo_rows

    faq_entries_upsert(rows=demo_rows())  # in a test transaction: the after-commit index task never runs
    out = StringIO()
    call_command("rebuild_index", stdout=out, stderr=StringIO())
    assert "entries/s" in out.getvalue()
    assert faq_search("パスワード忘れた").hits[0].external_id == "ACC-001"
    out = StringIO()
    call_command("rebuild_index", stdout=out, stderr=StringIO())
    assert "nothing to do" in out.getvalue()


def test_the_warm_up_loads_the_models_a_first_search_needs_and_never_raises(demo_faq, monkeypatch):
    from apps.faq import embedders, search

    text = "ウォームアップだけで使う問い合わせ文"  # in no other test, so no earlier search put it in the query cache
    search.search_warm_up(text)
    assert embedders._embedder is not None and text in embedders._embedder._queries

    def broken():
        raise RuntimeError("the index directory is unreadable")

    monkeypatch.setattr(search, "embedder_get", broken)
    search.search_warm_up("送料")  # logged, not raised


def test_only_a_worker_process_for_generation_warms_search_up(monkeypatch):
    from karakuri_cs import celery as celery_module

    calls = []
    monkeypatch.setattr("apps.faq.search.search_warm_up", lambda: calls.append("warm"))
    queues = celery_module.app.amqp.queues
    monkeypatch.setattr(queues, "_consume_from", {"index": object()})
    celery_module.search_warm_up_for_generation()
    assert calls == []
    monkeypatch.setattr(queues, "_consume_from", {"generation": object(), "default": object()})
    celery_module.search_warm_up_for_generation()
    assert calls == ["warm"]


@pytest.mark.parametrize(("execution", "loaded"), [("inprocess", True), ("celery", False)])
def test_a_web_process_that_answers_itself_loads_the_search_models_before_serving(tmp_path, execution, loaded):
    """The ASGI application, imported as daphne imports it, in a fresh process."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {
        **os.environ,
        "KARAKURI_DATA_DIR": str(tmp_path),
        "FAQ_CACHE_DIR": str(settings.FAQ_CACHE_DIR),
        "REPLY_EXECUTION": execution,
        "REDIS_URL": "redis://127.0.0.1:6379/9",
    }
    env.pop("DATABASE_URL", None)
    check = "import karakuri_cs.asgi; from apps.faq import embedders; print(embedders._embedder is not None)"
    out = subprocess.run(
        [sys.executable, "-c", check], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(loaded)
