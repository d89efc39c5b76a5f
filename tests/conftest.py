"""Shared test fixtures: a small real knowledge base with a real search index, and customer sockets through
the real ASGI application. The per-session data directory is set by tests/session_env.py (a plugin that runs
before Django reads its settings)."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from apps.faq.services import FaqRow, faq_entries_upsert

SMALL_FAQ = [
    FaqRow(
        external_id="ACC-001",
        question="パスワードを忘れてしまいました。どうすればよいですか？",
        answer="ログイン画面の「パスワードをお忘れの方」から、ご登録のメールアドレスを入力してください。"
        "再設定用のメールをお送りいたします。",
        category="アカウント",
        tags=("ログイン", "パスワード"),
        alt_questions=("パスワードを再設定したい",),
    ),
    FaqRow(
        external_id="DLV-001",
        question="注文した商品はいつ届きますか？",
        answer="ご注文から通常2〜4日でお届けいたします。発送後にお送りするメールから配送状況をご確認いただけます。",
        category="配送",
        tags=("配送", "お届け日"),
    ),
    FaqRow(
        external_id="RET-001",
        question="商品を返品できますか？",
        answer="商品到着から8日以内であれば、マイページの「注文履歴」から返品をお申し込みいただけます。",
        category="返品・交換",
        tags=("返品",),
        alt_questions=("返品の方法を教えてください",),
    ),
    FaqRow(
        external_id="BIL-001",
        question="利用できる支払い方法を教えてください。",
        answer="クレジットカード、コンビニ払い、銀行振込をご利用いただけます。",
        category="お支払い・請求",
        tags=("支払い方法",),
    ),
]


@pytest.fixture
def small_faq(transactional_db):
    """Four FAQ entries, committed and indexed, as the reply pipeline in another thread will see them."""
    from apps.faq.index import index_update

    faq_entries_upsert(rows=SMALL_FAQ, actor="test")
    index_update()
    return SMALL_FAQ


@pytest.fixture
def communicator_factory():
    """Connect real WebSocket clients to the real ASGI application; all are disconnected at the end."""
    from karakuri_cs.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def connect(path: str = "/ws/chat/") -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
        connected, _ = await communicator.connect()
        assert connected
        opened.append(communicator)
        return communicator

    yield connect
    # Tests disconnect their own; anything left open is closed by pytest-asyncio's loop teardown.
    for communicator in opened:
        communicator.future.cancel()


@pytest.fixture
def generation_worker(transactional_db, settings):
    """A real Celery worker process on the `generation` queue (bot replies and copilot drafts), with this process
    sending work to it. Needs Redis (tests marked `services`)."""
    from tests.celery_worker import celery_worker

    with celery_worker("generation", redis_url=settings.REDIS_URL, env={"REPLY_EXECUTION": "celery"}) as worker:
        settings.REPLY_EXECUTION = "celery"
        yield worker
