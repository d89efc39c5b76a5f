"""The customer chat in a real browser: headless Chromium against the real ASGI app under daphne.

Fixtures (server, stand-in host sites, browser) are in tests/chat/conftest_browser.py. The browser and the
server are shared by the module; each test starts its own conversation unless it says otherwise.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import override_settings
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from apps.chat.models import Conversation, Message
from apps.chat.texts_ja import ERRORS, HANDOFF_REQUESTED

pytest_plugins = ["tests.chat.conftest_browser"]

# Generous: the server's first search loads the embedder.
WAIT = 30
PASSWORD_ANSWER_PART = "パスワードをお忘れの方"
# Worded differently from the FAQ question (パスワードを忘れた場合はどうすればよいですか？).
PASSWORD_QUESTION = "ログインするときのパスワードが思い出せません。どうしたらいいですか？"

MESSAGES_JS = """
return Array.from(document.querySelectorAll('[data-testid="message"]')).map(li => ({
  role: li.dataset.role,
  seq: li.dataset.seq ? Number(li.dataset.seq) : null,
  state: li.dataset.state || null,
  feedback: li.dataset.feedback === undefined ? null : li.dataset.feedback,
  text: li.querySelector('[data-testid="message-text"]').textContent,
  faq: (li.querySelector('[data-testid="faq-note"]') || {}).textContent || null,
}));
"""

# Records what the page shows while a reply is written: whether the typing indicator appeared and every
# state of the streamed text.
OBSERVE_JS = """
const app = document.querySelector('[data-testid="chat-app"]');
const seen = window.__seen = {typing: false, streamed: []};
new MutationObserver(() => {
  if (!document.querySelector('[data-testid="typing"]').hidden) seen.typing = true;
  const s = document.querySelector('[data-testid="streaming-reply"] .msg__text');
  if (s && seen.streamed[seen.streamed.length - 1] !== s.textContent) seen.streamed.push(s.textContent);
}).observe(app, {subtree: true, childList: true, characterData: true, attributes: true});
"""


IME_ENTER_JS = """
const box = arguments[0];
const enter = (init) => box.dispatchEvent(
  new KeyboardEvent('keydown', {key: 'Enter', bubbles: true, cancelable: true, ...init}));
enter({isComposing: true});
box.dispatchEvent(new CompositionEvent('compositionstart', {bubbles: true}));
enter({});
box.dispatchEvent(new CompositionEvent('compositionend', {bubbles: true}));
"""

# Records every frame the page sends; drops the first message.send and closes the socket, as if the connection
# died right after the customer pressed Enter.
LOSE_NEXT_MESSAGE_JS = """
window.__sent = [];
let lose = true;
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  const event = JSON.parse(data);
  window.__sent.push(event);
  if (lose && event.type === 'message.send') {
    lose = false;
    setTimeout(() => this.close(), 0);
    return;
  }
  return send.call(this, data);
};
"""


def wait(driver, condition, timeout: float = WAIT, message: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message)


def messages(driver, role: str | None = None) -> list[dict]:
    found = driver.execute_script(MESSAGES_JS)
    return [m for m in found if role is None or m["role"] == role]


def by_testid(driver, name: str):
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def wait_connected(driver) -> None:
    wait(
        driver,
        lambda d: by_testid(d, "connection-status").get_attribute("data-state") == "open",
        message="the chat did not connect",
    )


def forget_conversation(driver, server) -> None:
    """Clear the chat origin's localStorage (where the page keeps its conversation token)."""
    driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": server.url, "storageTypes": "local_storage"})


def open_chat(driver, server, *, fresh: bool = True, path: str = "/chat/") -> None:
    """Open the chat page; `fresh` forgets the stored conversation first, so a new one starts."""
    if fresh:
        forget_conversation(driver, server)
    driver.get(server.url + path)
    wait_connected(driver)


def ask(driver, text: str) -> None:
    box = by_testid(driver, "chat-input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def wait_bot_replies(driver, count: int) -> list[dict]:
    wait(driver, lambda d: len(messages(d, "bot")) >= count, message=f"no bot reply #{count}")
    return messages(driver, "bot")


def stored_token(driver) -> str:
    return json.loads(driver.execute_script("return window.localStorage.getItem('karakuri_cs.chat.v1')"))["token"]


def conversation_of(token: str) -> Conversation:
    from apps.chat.tokens import conversation_id_from_token

    return Conversation.objects.get(id=conversation_id_from_token(token))


def widget_root(driver):
    return driver.find_element(By.CSS_SELECTOR, '[data-testid="chat-widget"]').shadow_root


def open_widget(driver):
    """Click the embed launcher and switch into the chat iframe."""
    root = wait(driver, lambda d: widget_root(d), message="the launcher did not appear")
    launcher = root.find_element(By.CSS_SELECTOR, '[data-testid="chat-launcher"]')
    assert launcher.get_attribute("aria-expanded") == "false"
    launcher.click()
    assert launcher.get_attribute("aria-expanded") == "true"
    iframe = root.find_element(By.CSS_SELECTOR, '[data-testid="chat-iframe"]')
    assert iframe.is_displayed()
    driver.switch_to.frame(iframe)
    return launcher


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("browser_faq")
class TestCustomerChatInBrowser:
    @pytest.fixture(autouse=True)
    def _no_console_errors(self, browser):
        """Any error in the page's console (a script error, a refused resource) fails the test."""
        browser.get_log("browser")  # drop what earlier tests left
        yield
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []

    def test_a_question_streams_and_ends_with_the_faq_answer(self, browser, chat_server, db_read):
        open_chat(browser, chat_server)
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
        browser.execute_script(OBSERVE_JS)

        ask(browser, PASSWORD_QUESTION)

        (reply,) = wait_bot_replies(browser, 1)
        seen = browser.execute_script("return window.__seen")
        assert seen["typing"], "the typing indicator never showed"
        streamed = seen["streamed"]
        assert len(streamed) >= 2, f"the reply did not grow token by token: {streamed}"
        assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(streamed, streamed[1:], strict=False))
        # The streamed bubble is replaced by the saved message, and the indicator goes away.
        assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="streaming-reply"]') == []
        assert not by_testid(browser, "typing").is_displayed()
        # (The final text may differ from the streamed one when a reply fails its checks; here it answers.)
        assert PASSWORD_ANSWER_PART in reply["text"]
        assert reply["faq"] and reply["faq"].startswith("参考: ")
        assert "パスワードを忘れた場合はどうすればよいですか" in reply["faq"]

        (question,) = messages(browser, "customer")
        assert question["text"] == PASSWORD_QUESTION and question["state"] is None
        assert question["seq"] < reply["seq"]
        assert by_testid(browser, "chat-input").get_attribute("value") == ""

        def stored():
            conversation = conversation_of(stored_token(browser))
            return list(conversation.messages.order_by("seq").values_list("seq", "role", "text"))

        assert db_read(stored) == [
            (question["seq"], "customer", question["text"]),
            (reply["seq"], "bot", reply["text"]),
        ]

    def test_enter_sends_but_not_while_an_ime_is_composing_and_shift_enter_is_a_new_line(self, browser, chat_server):
        open_chat(browser, chat_server)
        box = by_testid(browser, "chat-input")
        box.send_keys("へんぴん")
        # The Enter that confirms a kana-kanji conversion: isComposing on the event, or between the
        # composition events (how some browsers report it).
        browser.execute_script(IME_ENTER_JS, box)
        assert messages(browser) == []
        assert box.get_attribute("value") == "へんぴん"

        box.clear()
        box.send_keys("返品について")
        box.send_keys(Keys.SHIFT, Keys.ENTER)
        box.send_keys("方法を教えてください")
        assert messages(browser) == []
        assert box.get_attribute("value") == "返品について\n方法を教えてください"
        box.send_keys(Keys.ENTER)
        wait(browser, lambda d: messages(d, "customer") and messages(d, "customer")[0]["seq"])
        assert messages(browser, "customer")[0]["text"] == "返品について\n方法を教えてください"
        assert box.get_attribute("value") == ""
        wait_bot_replies(browser, 1)

        by_testid(browser, "chat-input").send_keys("送信ボタンでも送れますか")
        by_testid(browser, "chat-send").click()
        wait_bot_replies(browser, 2)

    def test_refused_messages_show_the_error_inline_and_can_be_retried(self, browser, chat_server, db_read):
        open_chat(browser, chat_server)
        box = by_testid(browser, "chat-input")
        error = by_testid(browser, "chat-error")
        assert not error.is_displayed()

        # Refused by the server (control character): its Japanese message, shown inline, and the bubble marked.
        browser.execute_script("arguments[0].value = 'ベル\u0007です'", box)
        by_testid(browser, "chat-send").click()
        wait(browser, lambda d: error.is_displayed(), message="no error shown")
        assert error.text == ERRORS["invalid_characters"]
        (failed,) = messages(browser, "customer")
        assert failed["state"] == "failed" and failed["seq"] is None
        assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="message-retry"]')
        by_testid(browser, "chat-error-dismiss").click()
        assert not error.is_displayed()

        # Too long: caught before sending, with the limit in the message.
        limit = settings.CHAT_MAX_MESSAGE_CHARS
        browser.execute_script("arguments[0].value = 'あ'.repeat(arguments[1])", box, limit + 1)
        by_testid(browser, "chat-send").click()
        wait(browser, lambda d: error.is_displayed())
        assert f"{limit}文字以内" in error.text
        assert len(messages(browser, "customer")) == 1
        assert box.get_attribute("value") == "あ" * (limit + 1)  # nothing the customer typed is lost

        # A good message clears the error; nothing refused was stored.
        box.clear()
        ask(browser, PASSWORD_QUESTION)
        wait_bot_replies(browser, 1)
        assert not error.is_displayed()
        token = stored_token(browser)
        assert db_read(lambda: list(conversation_of(token).messages.values_list("role", flat=True))) == [
            "customer",
            "bot",
        ]

    def test_thumbs_are_stored_and_toggle(self, browser, chat_server, db_read):
        open_chat(browser, chat_server)
        ask(browser, PASSWORD_QUESTION)
        (reply,) = wait_bot_replies(browser, 1)
        bubble = browser.find_element(By.CSS_SELECTOR, f'[data-testid="message"][data-seq="{reply["seq"]}"]')
        up = bubble.find_element(By.CSS_SELECTOR, '[data-testid="thumb-up"]')
        down = bubble.find_element(By.CSS_SELECTOR, '[data-testid="thumb-down"]')
        token = stored_token(browser)

        def feedback():
            return Message.objects.get(conversation=conversation_of(token), seq=reply["seq"]).feedback

        assert db_read(feedback) is None
        up.click()
        wait(browser, lambda d: up.get_attribute("aria-pressed") == "true")
        assert down.get_attribute("aria-pressed") == "false"
        assert db_read(feedback) == 1

        up.click()  # pressing it again clears it
        wait(browser, lambda d: up.get_attribute("aria-pressed") == "false")
        assert db_read(feedback) is None

        down.click()
        wait(browser, lambda d: down.get_attribute("aria-pressed") == "true")
        assert db_read(feedback) == -1
        up.click()  # switching sides
        wait(
            browser,
            lambda d: up.get_attribute("aria-pressed") == "true" and down.get_attribute("aria-pressed") == "false",
        )
        assert db_read(feedback) == 1

    def test_the_conversation_survives_a_reload(self, browser, chat_server, db_read):
        open_chat(browser, chat_server)
        ask(browser, PASSWORD_QUESTION)
        wait_bot_replies(browser, 1)
        ask(browser, "商品はいつごろ届きますか？")
        wait_bot_replies(browser, 2)
        up = browser.find_elements(
            By.CSS_SELECTOR, '[data-testid="message"][data-role="bot"] [data-testid="thumb-up"]'
        )[0]
        up.click()
        wait(browser, lambda d: up.get_attribute("aria-pressed") == "true")
        before = messages(browser)
        token = stored_token(browser)
        conversations = db_read(Conversation.objects.count)

        open_chat(browser, chat_server, fresh=False)
        wait(browser, lambda d: len(messages(d)) == len(before), message="the history did not come back")
        assert messages(browser) == before
        assert before[1]["feedback"] == "1"
        assert stored_token(browser) == token
        assert db_read(Conversation.objects.count) == conversations, "the reload started a new conversation"

        # And it goes on in the same conversation.
        ask(browser, "返品したいのですが")
        wait_bot_replies(browser, 3)
        seqs = [m["seq"] for m in messages(browser)]
        assert seqs == sorted(set(seqs))
        assert db_read(lambda: conversation_of(token).messages.count()) == len(seqs)

    def test_markup_in_a_message_is_shown_as_text(self, browser, chat_server):
        open_chat(browser, chat_server)
        browser.execute_script("window.__xss = 0; window.alert = () => { window.__xss += 1; };")
        payload = '<script>alert(1)</script><b>x</b><img src=x onerror="alert(2)">'
        ask(browser, payload)
        wait_bot_replies(browser, 1)
        (mine,) = messages(browser, "customer")
        assert mine["text"] == payload
        bubble = browser.find_element(By.CSS_SELECTOR, f'[data-testid="message"][data-seq="{mine["seq"]}"]')
        assert bubble.find_element(By.CSS_SELECTOR, '[data-testid="message-text"]').text == payload
        listing = by_testid(browser, "message-list")
        assert listing.find_elements(By.CSS_SELECTOR, "b, script, img") == []
        assert browser.execute_script("return window.__xss") == 0
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018

    def test_talk_to_a_person_silences_the_bot(self, browser, chat_server, db_read):
        open_chat(browser, chat_server)
        button = by_testid(browser, "operator-request")
        assert button.text == "担当者と話す"
        wait(browser, lambda d: button.is_enabled())
        button.click()

        wait(browser, lambda d: messages(d, "system"), message="no handoff notice")
        (notice,) = messages(browser, "system")
        assert notice["text"] == HANDOFF_REQUESTED
        status = by_testid(browser, "conversation-status")
        wait(browser, lambda d: status.get_attribute("data-status") == "waiting_for_operator")
        assert "担当者" in status.text
        assert not button.is_enabled()
        token = stored_token(browser)
        assert db_read(lambda: conversation_of(token).status) == "waiting_for_operator"

        ask(browser, PASSWORD_QUESTION)
        wait(browser, lambda d: messages(d, "customer") and messages(d, "customer")[-1]["seq"], message="not stored")
        time.sleep(2)  # time enough for a reply that should not come
        assert messages(browser, "bot") == []
        assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="streaming-reply"]') == []
        assert not by_testid(browser, "typing").is_displayed()
        assert db_read(lambda: conversation_of(token).messages.filter(role="bot").count()) == 0

        # Still waiting after a reload.
        open_chat(browser, chat_server, fresh=False)
        wait(
            browser,
            lambda d: by_testid(d, "conversation-status").get_attribute("data-status") == "waiting_for_operator",
        )
        assert not by_testid(browser, "operator-request").is_enabled()

    def test_it_reconnects_resumes_and_sends_what_was_typed_offline(self, browser, chat_server, db_read):
        open_chat(browser, chat_server)
        ask(browser, PASSWORD_QUESTION)
        wait_bot_replies(browser, 1)
        token = stored_token(browser)

        chat_server.stop()
        status = by_testid(browser, "connection-status")
        wait(browser, lambda d: status.get_attribute("data-state") == "reconnecting", timeout=10)
        assert status.is_displayed() and "接続" in status.text
        ask(browser, "頼んだ商品はいつ届きますか？")
        (_, offline) = messages(browser, "customer")
        assert offline["state"] == "pending" and offline["seq"] is None

        chat_server.start()
        # Back-off tops out at 30 s (±20 %), however long the restart took.
        wait(browser, lambda d: status.get_attribute("data-state") == "open", timeout=60, message="no reconnect")
        replies = wait_bot_replies(browser, 2)
        assert "2〜4日" in replies[-1]["text"]
        shown = messages(browser)
        assert [m["state"] for m in shown] == [None] * 4
        assert stored_token(browser) == token

        def stored():
            return list(conversation_of(token).messages.order_by("seq").values_list("seq", "role", "text"))

        assert db_read(stored) == [(m["seq"], m["role"], m["text"]) for m in shown]

    def test_a_message_lost_with_the_connection_is_resent_once(self, browser, chat_server, db_read):
        open_chat(browser, chat_server)
        ask(browser, PASSWORD_QUESTION)
        (first,) = wait_bot_replies(browser, 1)
        token = stored_token(browser)
        browser.execute_script(LOSE_NEXT_MESSAGE_JS)

        ask(browser, "返品の送料はかかりますか？")
        wait(browser, lambda d: len(messages(d, "bot")) == 2, message="no reply after the reconnect")

        sent = browser.execute_script("return window.__sent")
        sends = [e for e in sent if e["type"] == "message.send"]
        assert len(sends) == 2 and sends[0] == sends[1], sends  # the same text and client_msg_id, twice
        (hello,) = [e for e in sent if e["type"] == "hello"]
        # It resumes the same conversation and asks only for what it has not seen.
        assert hello == {"type": "hello", "token": token, "after_seq": first["seq"]}
        assert [m["state"] for m in messages(browser)] == [None] * 4

        def stored():
            return list(conversation_of(token).messages.order_by("seq").values_list("seq", "role", "client_msg_id"))

        rows = db_read(stored)
        assert [r[1] for r in rows] == ["customer", "bot", "customer", "bot"]
        assert rows[2][2] == sends[0]["client_msg_id"]
        assert [m["seq"] for m in messages(browser)] == [r[0] for r in rows]

    def test_the_embed_demo_page_opens_the_chat_in_an_iframe(self, browser, chat_server):
        forget_conversation(browser, chat_server)
        browser.get(chat_server.url + "/chat/embed-demo/")
        snippet = by_testid(browser, "embed-snippet").text
        assert snippet == f'<script src="{chat_server.url}/static/chat/embed.js" defer></script>'
        launcher = open_widget(browser)
        try:
            wait_connected(browser)
            assert "is-embed" in browser.find_element(By.TAG_NAME, "body").get_attribute("class")
            ask(browser, PASSWORD_QUESTION)
            (reply,) = wait_bot_replies(browser, 1)
            assert PASSWORD_ANSWER_PART in reply["text"]
            by_testid(browser, "chat-close").click()  # asks the host page to close the panel
        finally:
            browser.switch_to.default_content()
        wait(browser, lambda d: launcher.get_attribute("aria-expanded") == "false")
        panel = widget_root(browser).find_element(By.CSS_SELECTOR, '[data-testid="chat-panel"]')
        assert not panel.is_displayed()

    def test_a_site_in_chat_embed_allowed_origins_can_embed_the_chat(self, browser, chat_server, embed_hosts):
        site = embed_hosts.allowed
        site.set_script(chat_server.url + "/static/chat/embed.js")
        browser.get(site.origin + "/")
        open_widget(browser)
        try:
            assert browser.execute_script("return location.origin") == chat_server.url
            wait_connected(browser)
            ask(browser, PASSWORD_QUESTION)
            (reply,) = wait_bot_replies(browser, 1)
            assert PASSWORD_ANSWER_PART in reply["text"]
        finally:
            browser.switch_to.default_content()

    def test_another_site_cannot_frame_the_chat(self, browser, chat_server, embed_hosts):
        site = embed_hosts.other
        site.set_script(chat_server.url + "/static/chat/embed.js")
        browser.get(site.origin + "/")
        open_widget(browser)
        browser.switch_to.default_content()
        refused = wait(
            browser,
            lambda d: [e for e in d.get_log("browser") if "frame-ancestors" in e["message"]],
            timeout=10,
            message="Chromium did not refuse the frame",
        )
        assert f"Framing '{chat_server.url}/'" in refused[0]["message"]
        browser.get_log("browser")  # the refusal is this test's expected console error
        iframe = widget_root(browser).find_element(By.CSS_SELECTOR, '[data-testid="chat-iframe"]')
        browser.switch_to.frame(iframe)
        try:
            assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="chat-input"]') == []
        finally:
            browser.switch_to.default_content()

    def test_the_pages_load_nothing_from_another_origin(self, browser, chat_server):
        def requested() -> list[str]:
            return browser.execute_script(
                "return performance.getEntriesByType('navigation').concat("
                "performance.getEntriesByType('resource')).map(e => e.name)"
            )

        def off_origin(urls: list[str]) -> list[str]:
            origin = urlsplit(chat_server.url)
            return [u for u in urls if urlsplit(u)[:2] != origin[:2]]

        open_chat(browser, chat_server)
        urls = requested()
        assert {"/chat/", "/static/chat/chat.css", "/static/chat/chat.js"} <= {urlsplit(u).path for u in urls}
        assert off_origin(urls) == []

        browser.get(chat_server.url + "/chat/embed-demo/")
        open_widget(browser)
        try:
            wait_connected(browser)
            in_frame = requested()
        finally:
            browser.switch_to.default_content()
        on_page = requested()
        assert "/static/chat/embed.js" in {urlsplit(u).path for u in on_page}
        assert "/chat/embed/" in {urlsplit(u).path for u in in_frame}
        assert off_origin(on_page) == [] and off_origin(in_frame) == []


# Response headers, without a browser.


@override_settings(CHAT_EMBED_ALLOWED_ORIGINS="https://shop.example.co.jp  https://*.example.com 'unsafe-inline' x;y")
def test_only_the_embed_page_may_be_framed_and_only_by_allowed_origins(client):
    embed = client.get("/chat/embed/")
    assert embed.status_code == 200
    assert "X-Frame-Options" not in embed.headers
    csp = dict(part.strip().split(" ", 1) for part in embed.headers["Content-Security-Policy"].split(";"))
    assert csp["frame-ancestors"] == "'self' https://shop.example.co.jp https://*.example.com"
    assert csp["script-src"] == "'self'"

    for path in ("/chat/", "/chat/embed-demo/"):
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_the_chat_page_is_japanese_and_loads_only_its_own_assets(client):
    page = client.get("/chat/").content.decode()
    assert '<html lang="ja">' in page
    assert 'src="/static/chat/chat.js"' in page and 'href="/static/chat/chat.css"' in page
    assert "http://" not in page and "https://" not in page
    assert client.post("/chat/").status_code == 405
