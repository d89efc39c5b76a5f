"""Fixtures for the browser tests (a plugin module: test_browser.py loads it with `pytest_plugins`).

- `chat_server`: the real ASGI application under daphne, in a subprocess, on the pytest-django test database,
  with a small FAQ knowledge base and its own search index. It listens on a socket this process owns, so the
  server can be stopped and started again on the same port (the reconnect test does that).
- `embed_hosts`: two stand-in company sites on other origins (http://localhost:PORT, a different site from
  http://127.0.0.1:PORT); the chat server allows the first one to frame the chat and not the second.
- `browser`: headless Chromium (Debian's chromium + chromium-driver) through Selenium.

Tests run with transactional_db: what they write is committed, so the server (another process) sees it, and
the database is flushed after each test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from apps.faq.services import FaqRow

BASE_DIR = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Without these Chromium keeps trying to reach Google's services, which this closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--lang=ja",
    "--window-size=1200,900",
]
SERVER_START_TIMEOUT = 60

# A small knowledge base written for these tests (the demo data set is another engineer's and may change).
BROWSER_FAQ = [
    FaqRow(
        external_id="B-ACC-001",
        question="パスワードを忘れた場合はどうすればよいですか？",
        answer="ログイン画面の「パスワードをお忘れの方」から、ご登録のメールアドレスを入力してください。"
        "パスワード再設定用のリンクをメールでお送りいたします。リンクの有効期限は24時間です。",
        category="アカウント",
        tags=("ログイン", "パスワード"),
        alt_questions=("パスワードを再設定したい", "パスワードがわからない"),
    ),
    FaqRow(
        external_id="B-DLV-001",
        question="注文した商品はいつ届きますか？",
        answer="ご注文から通常2〜4日でお届けいたします。発送完了メールに記載の追跡番号で配送状況をご確認いただけます。",
        category="配送",
        tags=("配送", "お届け日"),
        alt_questions=("配送にかかる日数を知りたい",),
    ),
    FaqRow(
        external_id="B-RET-001",
        question="商品を返品できますか？",
        answer="商品到着から8日以内であれば、マイページの「注文履歴」から返品をお申し込みいただけます。",
        category="返品・交換",
        tags=("返品",),
        alt_questions=("返品の方法を教えてください",),
    ),
    FaqRow(
        external_id="B-BIL-001",
        question="利用できる支払い方法を教えてください。",
        answer="クレジットカード、コンビニ払い、銀行振込をご利用いただけます。",
        category="お支払い・請求",
        tags=("支払い方法",),
    ),
]


def _free_listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed browser test carries the end of the server's log in its report."""
    report = yield
    server = getattr(item, "funcargs", {}).get("chat_server")
    if report.failed and isinstance(server, ChatServer):
        report.sections.append(("daphne log (last lines)", server.log_tail(80)))
    return report


def _database_url() -> str:
    """A DATABASE_URL naming the test database pytest-django created, for the server subprocess."""
    s = connections["default"].settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        if connections["default"].is_in_memory_db():
            raise RuntimeError("browser tests: the SQLite test database is in memory; the server cannot share it")
        return "sqlite:///" + str(Path(s["NAME"]).resolve())
    if s["ENGINE"] == "django.db.backends.postgresql":
        auth = quote(s.get("USER") or "", safe="")
        if s.get("PASSWORD"):
            auth += ":" + quote(s["PASSWORD"], safe="")
        host = s.get("HOST") or "127.0.0.1"
        port = f":{s['PORT']}" if s.get("PORT") else ""
        return f"postgres://{auth + '@' if auth else ''}{host}{port}/{quote(s['NAME'], safe='')}"
    raise RuntimeError(f"browser tests: unsupported database engine {s['ENGINE']}")


def server_env(*, index_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a server subprocess on the test database, with its own search index."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "karakuri_cs.settings",
        # The same state as this process's settings (not whatever the environment says by now).
        "KARAKURI_DATA_DIR": str(settings.DATA_DIR),
        "FAQ_CACHE_DIR": str(settings.FAQ_CACHE_DIR),
        "DATABASE_URL": _database_url(),
        "FAQ_INDEX_DIR": str(index_dir),
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Replies in the server process even when REDIS_URL is set (no Celery worker follows this server).
        "REPLY_EXECUTION": "inprocess",
        "CHAT_RATE_LIMIT": "1000/minute",
        "CHAT_NEW_CONVERSATION_RATE_LIMIT": "1000/minute",
        "CHANNEL_LAYER_PREFIX": f"browser-test-{uuid.uuid4().hex[:8]}",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


@dataclass
class ChatServer:
    """daphne serving karakuri_cs.asgi:application on a socket held by the test process."""

    env: dict[str, str]
    log_path: Path
    sock: socket.socket = field(default_factory=_free_listening_socket)
    process: subprocess.Popen | None = None

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        fd = self.sock.fileno()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "--fd", str(fd), "-v", "1", "karakuri_cs.asgi:application"],
            cwd=BASE_DIR,
            env=self.env,
            pass_fds=(fd,),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/chat/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"daphne did not answer within {SERVER_START_TIMEOUT}s:\n{self.log_tail()}")

    def ensure_running(self) -> None:
        """Start the server again if it died (a failed test must not take the rest of the module with it)."""
        if self.process is None or self.process.poll() is not None:
            self.start()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class _HostPageHandler(BaseHTTPRequestHandler):
    page: bytes = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?")[0] != "/":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


@dataclass
class HostSite:
    """A stand-in for a company's own site on another origin, carrying the one <script> tag."""

    httpd: ThreadingHTTPServer
    name: str

    @property
    def origin(self) -> str:
        # "localhost" rather than 127.0.0.1: a different site from the chat server, as on the real web.
        return f"http://localhost:{self.httpd.server_address[1]}"

    def set_script(self, script_src: str) -> None:
        page = (
            '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>'
            + self.name
            + "</title></head><body><h1>"
            + self.name
            + "</h1><p>会社のウェブサイト（テスト用）</p>"
            + f'<script src="{script_src}" defer></script></body></html>'
        )
        self.httpd.RequestHandlerClass.page = page.encode()


def _host_site(name: str) -> HostSite:
    handler = type("HostPageHandler", (_HostPageHandler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return HostSite(httpd=httpd, name=name)


@dataclass
class EmbedHosts:
    allowed: HostSite
    other: HostSite


@pytest.fixture(scope="module")
def embed_hosts():
    hosts = EmbedHosts(allowed=_host_site("許可されたサイト"), other=_host_site("許可されていないサイト"))
    yield hosts
    for site in (hosts.allowed, hosts.other):
        site.httpd.shutdown()
        site.httpd.server_close()


@pytest.fixture(scope="module")
def chat_server(django_db_setup, django_db_blocker, embed_hosts, tmp_path_factory):
    """The real app under daphne on the test database. Tests using it take `browser_faq` for their data."""
    workdir = tmp_path_factory.mktemp("browser")
    index_dir = workdir / "index"
    # The server and this process share a search index of their own; other tests' indexes are never touched.
    overrides = override_settings(FAQ_INDEX_DIR=index_dir)
    overrides.enable()
    with django_db_blocker.unblock():
        env = server_env(index_dir=index_dir, CHAT_EMBED_ALLOWED_ORIGINS=embed_hosts.allowed.origin)
    server = ChatServer(env=env, log_path=workdir / "daphne.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.sock.close()
        if os.environ.get("BROWSER_TEST_SHOW_SERVER_LOG"):
            print(server.log_tail(400))
        overrides.disable()
        shutil.rmtree(index_dir, ignore_errors=True)


@pytest.fixture
def browser_faq(chat_server, transactional_db):
    """BROWSER_FAQ committed and indexed (the test database is flushed after each test, the index is kept)."""
    from apps.faq.index import index_update
    from apps.faq.services import faq_entries_upsert

    chat_server.ensure_running()
    faq_entries_upsert(rows=BROWSER_FAQ, actor="browser-test")
    index_update()
    return BROWSER_FAQ


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile, driven through Debian's chromedriver."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(
            f"The browser tests need Chromium and its driver ({', '.join(missing)} not found): "
            "apt-get install chromium chromium-driver (or set CHROMIUM_BINARY / CHROMEDRIVER_BINARY)."
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


@pytest.fixture
def db_read(transactional_db):
    """Run a function against the database; outside any transaction, so it sees what the server committed."""

    def read(fn):
        return fn()

    return read


__all__ = [
    "BROWSER_FAQ",
    "pytest_runtest_makereport",
    "ChatServer",
    "EmbedHosts",
    "browser",
    "chat_server",
    "browser_faq",
    "db_read",
    "embed_hosts",
]
