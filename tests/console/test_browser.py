"""The console in a real browser, next to a customer in the same browser: headless Chromium against the real
ASGI app under daphne (the chat's browser fixtures, tests/chat/conftest_browser.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from apps.chat.texts_ja import OPERATOR_JOINED
from apps.console.roles import OPERATORS
from apps.training.models import Correction
from tests.chat.test_browser import (
    PASSWORD_QUESTION,
    ask,
    by_testid,
    conversation_of,
    messages,
    open_chat,
    stored_token,
    wait,
    wait_bot_replies,
)

pytest_plugins = ["tests.chat.conftest_browser"]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRANSCRIPT_JS = """
return Array.from(document.querySelectorAll('[data-testid="transcript-message"]')).map(li => ({
  role: li.dataset.role, seq: Number(li.dataset.seq),
  text: li.querySelector('[data-testid="transcript-text"]').textContent,
}));
"""


def sign_in(browser, server, username: str, password: str) -> None:
    browser.get(server.url + "/console/login/?next=/console/")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(password)
    by_testid(browser, "login-submit").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="queue-app"]'), message="not signed in")
    wait(browser, lambda d: by_testid(d, "connection-status").get_attribute("data-state") == "open")


def test_a_customer_and_an_operator_at_once(browser, chat_server, browser_faq, db_read):
    operator = User.objects.create_user(username="browser-operator", password="browser-pw-123")
    operator.groups.add(Group.objects.get(name=OPERATORS))

    customer_window = browser.current_window_handle
    open_chat(browser, chat_server)
    ask(browser, PASSWORD_QUESTION)
    wait_bot_replies(browser, 1)
    token = stored_token(browser)
    conversation_id = str(db_read(lambda: conversation_of(token).id))

    # The operator signs in; the queue is open before the customer asks for a person.
    browser.switch_to.new_window("window")
    operator_window = browser.current_window_handle
    sign_in(browser, chat_server, "browser-operator", "browser-pw-123")
    row_css = f'[data-testid="queue-waiting"] [data-conversation-id="{conversation_id}"]'
    assert not browser.find_elements(By.CSS_SELECTOR, row_css)

    browser.switch_to.window(customer_window)
    by_testid(browser, "operator-request").click()
    ask(browser, "<b>注文をキャンセルしたい</b>")
    wait(browser, lambda d: messages(d, "customer")[-1]["seq"], message="the question was not stored")

    # It appears in the waiting section without a reload, with its wait time; customer markup stays text.
    browser.switch_to.window(operator_window)
    row = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row_css), message="not in the queue")[0]
    assert "待ち時間" in row.find_element(By.CSS_SELECTOR, '[data-testid="queue-wait"]').text
    row.find_element(By.TAG_NAME, "a").click()

    transcript = wait(browser, lambda d: len(d.execute_script(TRANSCRIPT_JS)) >= 4 and d.execute_script(TRANSCRIPT_JS))
    assert transcript[-1]["text"] == "<b>注文をキャンセルしたい</b>"
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="transcript"] b')
    by_testid(browser, "take-over").click()
    wait(browser, lambda d: by_testid(d, "conv-status").get_attribute("data-status") == "operator")

    # The copilot drafts a reply to the last customer message; the operator edits it and sends.
    draft = wait(browser, lambda d: by_testid(d, "draft-text").text, message="no copilot draft")
    assert draft
    by_testid(browser, "draft-use").click()
    box = by_testid(browser, "reply-text")
    assert box.get_attribute("value") == draft
    box.clear()
    sent = "担当の山田です。ご注文のキャンセルを承ります。注文番号をお知らせいただけますでしょうか。"
    box.send_keys(sent)
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    wait(browser, lambda d: any(m["role"] == "operator" for m in d.execute_script(TRANSCRIPT_JS)))

    # The customer sees that a person joined, and the person's answer.
    browser.switch_to.window(customer_window)
    wait(browser, lambda d: any(m["text"] == OPERATOR_JOINED for m in messages(d, "system")), message="no notice")
    answer = wait(browser, lambda d: messages(d, "operator"), message="the operator's answer did not arrive")
    assert answer[0]["text"] == sent
    assert by_testid(browser, "conversation-status").get_attribute("data-status") == "operator"

    copilot = db_read(lambda: Correction.objects.get(kind="copilot_edit"))
    assert copilot.chosen_text == sent and copilot.rejected_text == draft

    # The operator corrects the bot's first reply, by keyboard.
    browser.switch_to.window(operator_window)
    browser.find_element(By.CSS_SELECTOR, '[data-role="bot"] [data-testid="correct-link"]').click()
    chosen = wait(browser, lambda d: d.find_element(By.NAME, "chosen_text"))
    chosen.clear()
    chosen.send_keys("ログイン画面の「パスワードをお忘れの方」から再設定いただけます。")
    Select(browser.find_element(By.NAME, "faq_choice")).select_by_value("B-ACC-001")
    browser.find_element(By.ID, "id_attr_helpfulness_4").send_keys("3")  # digit rates the row, focus moves on
    browser.switch_to.active_element.send_keys("2")  # correctness
    browser.find_element(By.CSS_SELECTOR, 'input[name="reason_tags"][value="冗長"]').click()
    browser.switch_to.active_element.send_keys(Keys.CONTROL, Keys.ENTER)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="flash"]'), message="not saved")

    correction = db_read(lambda: Correction.objects.get(kind="correction"))
    assert correction.chosen_text == "ログイン画面の「パスワードをお忘れの方」から再設定いただけます。"
    assert correction.faq_external_id == "B-ACC-001"
    assert (correction.attributes["helpfulness"], correction.attributes["correctness"]) == (3, 2)
    assert correction.reason_tags == ["冗長"]
    assert correction.operator_id == operator.id
    browser.close()
    browser.switch_to.window(customer_window)
