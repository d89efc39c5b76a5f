"""Supervisor pages: sign-in and permissions, the review screen, export from the console, API tokens."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.training.models import ApiToken, ExportBatch, TrainingExample
from tests.training import factories

pytestmark = pytest.mark.django_db

PAGES = [
    "/console/training/review/",
    "/console/training/examples/",
    "/console/training/batches/",
    "/console/training/tokens/",
]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("url", PAGES)
def test_pages_send_anonymous_users_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/console/login/?next=")


@pytest.mark.parametrize("url", PAGES)
def test_pages_refuse_operators(operator, url):
    assert signed_in(operator).get(url).status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_supervisors_see_the_pages(reviewer, url):
    response = signed_in(reviewer).get(url)
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_each_page_needs_its_own_permission(db):
    from django.contrib.auth.models import Permission

    reviewer_only = factories.user_in(None)
    reviewer_only.user_permissions.add(Permission.objects.get(codename="review_trainingexample"))
    client = signed_in(reviewer_only)
    assert client.get("/console/training/review/").status_code == 200
    assert client.get("/console/training/batches/").status_code == 403
    assert client.get("/console/training/tokens/").status_code == 403
    assert client.get("/console/training/").url == "/console/training/review/"


def review(client: Client, example: TrainingExample, action: str, **fields):
    data = {"action": action, "revision": example.revision, "mode": "review", **fields}
    return client.post(f"/console/training/examples/{example.id}/", data)


def test_the_review_screen_shows_the_next_example_with_its_context(operator, reviewer):
    example = factories.correction(operator=operator, chosen="直した回答です。").example
    page = signed_in(reviewer).get("/console/training/review/").content.decode()
    assert f"#{example.id}" in page
    assert "注文した商品がまだ届きません。いつ届きますか？" in page  # the conversation the model saw
    assert "直した回答です。" in page and "通常2〜4日でお届けします。" in page  # chosen and rejected
    assert 'data-key="a"' in page and "training/review.js" in page


def test_approve_from_the_screen_moves_to_the_next_and_keeps_who_decided(operator, reviewer):
    first = factories.correction(operator=operator, chosen="一つ目").example
    second = factories.correction(operator=operator, chosen="二つ目").example
    client = signed_in(reviewer)
    response = review(client, first, "approve", chosen_text="一つ目（直した）")
    assert response.status_code == 302 and response.url == "/console/training/review/"
    first.refresh_from_db()
    assert (first.status, first.chosen_text, first.reviewed_by) == ("approved", "一つ目（直した）", reviewer)
    assert f"#{second.id}" in client.get("/console/training/review/").content.decode()
    detail = client.get(f"/console/training/examples/{first.id}/").content.decode()
    assert "supervisor1" in detail


def test_reject_and_skip(operator, reviewer):
    first = factories.correction(operator=operator).example
    second = factories.correction(operator=operator).example
    client = signed_in(reviewer)
    review(client, first, "skip")
    assert f"#{second.id}" in client.get("/console/training/review/").content.decode()
    review(client, second, "reject")
    second.refresh_from_db()
    assert second.status == "rejected"
    assert 'data-testid="review-empty"' in client.get("/console/training/review/").content.decode()
    client.get("/console/training/review/?restart=1")
    assert f"#{first.id}" in client.get("/console/training/review/").content.decode()


def test_editing_an_approved_example_on_its_page_sends_it_back_to_review(operator, reviewer):
    example = factories.approved_example(operator=operator, reviewer=reviewer)
    attributes = {f"attr_{k}": v for k, v in example.attributes.items()}
    response = signed_in(reviewer).post(
        f"/console/training/examples/{example.id}/",
        {"action": "edit", "revision": example.revision, "chosen_text": "もっと良い回答", **attributes},
    )
    assert response.status_code == 302
    example.refresh_from_db()
    assert (example.status, example.chosen_text) == ("pending", "もっと良い回答")


def test_a_stale_screen_is_told_instead_of_overwriting(operator, reviewer):
    example = factories.correction(operator=operator).example
    client = signed_in(reviewer)
    review(client, example, "reject")
    response = review(client, example, "approve")  # same, now stale, revision
    assert response.status_code == 302 and f"/examples/{example.id}/" in response.url
    example.refresh_from_db()
    assert example.status == "rejected"


def test_an_empty_chosen_text_is_refused_with_the_reason(operator, reviewer):
    example = factories.correction(operator=operator).example
    response = review(signed_in(reviewer), example, "edit", chosen_text="   ")
    assert response.status_code == 400 and "chosen_text" in response.content.decode()


@pytest.mark.usefixtures("eager_celery")
def test_export_from_the_console_runs_the_task_and_shows_progress(
    operator, reviewer, export_dir, django_capture_on_commit_callbacks
):
    factories.approved_example(operator=operator, reviewer=reviewer)
    client = signed_in(reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/console/training/batches/", {"format": "messages", "replay_ratio": "0.2"})
    batch = ExportBatch.objects.get()
    assert response.status_code == 302 and response.url == f"/console/training/batches/{batch.id}/"
    assert batch.requested_by == reviewer
    progress = client.get(f"/console/training/batches/{batch.id}/progress/").json()
    assert progress["status"] == "ready" and progress["done"] == progress["total"] == 1
    page = client.get(f"/console/training/batches/{batch.id}/").content.decode()
    assert "train.jsonl" in page and "training/batch.js" in page


def test_export_with_nothing_approved_says_so(reviewer):
    response = signed_in(reviewer).post("/console/training/batches/", {"format": "dpo"}, follow=True)
    assert "エクスポートする承認済みの事例がありません" in response.content.decode()
    assert not ExportBatch.objects.exists()


def test_the_console_offers_only_corpora_in_the_replay_folder(reviewer, operator, settings, tmp_path):
    settings.TRAINING_REPLAY_DIR = tmp_path
    (tmp_path / "wiki.jsonl").write_text('{"text": "a"}\n')
    factories.approved_example(operator=operator, reviewer=reviewer)
    client = signed_in(reviewer)
    assert "wiki.jsonl" in client.get("/console/training/batches/").content.decode()
    response = client.post("/console/training/batches/", {"format": "dpo", "replay_corpus": "/etc/passwd"})
    assert response.status_code == 400 and not ExportBatch.objects.exists()


def test_tokens_are_shown_once_and_can_be_revoked(reviewer):
    client = signed_in(reviewer)
    page = client.post("/console/training/tokens/", {"name": "trainer-1"}).content.decode()
    row = ApiToken.objects.get()
    shown = page.split('data-testid="new-token"')[1].split("<code>")[1].split("</code>")[0]
    assert shown.startswith(row.prefix) and row.token_hash != shown
    assert shown not in client.get("/console/training/tokens/").content.decode()
    client.post(f"/console/training/tokens/{row.id}/revoke/")
    row.refresh_from_db()
    assert row.revoked_at is not None and row.revoked_by == reviewer
