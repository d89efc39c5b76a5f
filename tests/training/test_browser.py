"""The review screen in a real browser, driven by the keyboard: headless Chromium against the real ASGI app
under daphne (the chat's browser fixtures, tests/chat/conftest_browser.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from apps.training.models import TrainingExample
from tests.chat.test_browser import WAIT
from tests.training import factories

pytest_plugins = ["tests.chat.conftest_browser"]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait(driver, condition, message: str = ""):
    # Each key press loads a new page: an element found on the old one may go stale while it is read.
    return WebDriverWait(driver, WAIT, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]).until(
        condition, message
    )


def heading(driver) -> str:
    return driver.find_element(By.TAG_NAME, "h1").text


def test_a_supervisor_reviews_with_the_keyboard(browser, chat_server, db_read):
    reviewer = User.objects.create_user(username="browser-supervisor", password="browser-pw-123")
    reviewer.groups.add(Group.objects.get_or_create(name="supervisors")[0])
    operator = factories.user_in("operators")
    first = factories.correction(operator=operator, chosen="一つ目の回答です。").example
    second = factories.correction(operator=operator, chosen="二つ目の回答です。").example

    browser.get(chat_server.url + "/console/login/?next=/console/training/review/")
    browser.find_element(By.ID, "id_username").send_keys("browser-supervisor")
    browser.find_element(By.ID, "id_password").send_keys("browser-pw-123")
    browser.find_element(By.ID, "id_password").send_keys(Keys.ENTER)
    wait(browser, lambda d: f"#{first.id}" in heading(d), message="no review screen")

    # E: edit the chosen text; Ctrl+Enter saves the edit (the example stays pending, on screen).
    keys = ActionChains(browser)
    keys.send_keys("e").key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys("直した回答です。")
    keys.key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="flash"]'), message="not saved")
    assert browser.current_url.endswith(f"/console/training/examples/{first.id}/?mode=review")
    assert db_read(lambda: TrainingExample.objects.get(id=first.id).chosen_text) == "直した回答です。"

    # A: approve; the next example comes up.
    ActionChains(browser).send_keys("a").perform()
    wait(browser, lambda d: f"#{second.id}" in heading(d), message="no next example")
    # R: reject it; nothing is left.
    ActionChains(browser).send_keys("r").perform()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="review-empty"]'), message="not empty")

    statuses = db_read(lambda: dict(TrainingExample.objects.values_list("id", "status")))
    assert statuses == {first.id: "approved", second.id: "rejected"}
    assert db_read(lambda: TrainingExample.objects.get(id=first.id).reviewed_by_id) == reviewer.id
