"""The FAQ admin: every save and every "delete" goes through faq_entries_upsert, so versions and revisions hold."""

import pytest
from django.urls import reverse

from apps.faq.models import FaqEntry, FaqEntryVersion, KbRevision
from tests.faq.factories import faq_entry_create

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:faq_faqentry_add")
LIST_URL = reverse("admin:faq_faqentry_changelist")


def change_url(entry: FaqEntry) -> str:
    return reverse("admin:faq_faqentry_change", args=[entry.pk])


def form_data(response) -> dict:
    """The admin form as a browser would post it back unchanged: its fields plus the inlines' management forms."""
    form = response.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is True:
            data[name] = "on"
        elif value not in (False, None):
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management[name].value()
    return data


@pytest.fixture
def entry():
    return faq_entry_create(
        external_id="t-pw",
        question="パスワードを忘れました",
        answer="再設定ページから変更できます。",
        category="accounts",
        tags=("パスワード", "ログイン"),
        alt_questions=("パスワードがわからない", "ログインできない"),
    )


def test_the_list_shows_id_question_category_active_and_revision(admin_client, entry):
    faq_entry_create(external_id="t-ship", question="送料はいくら？", category="delivery")

    response = admin_client.get(LIST_URL, {"category": "accounts", "q": "パスワード"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [entry]
    page = response.content.decode()
    for text in ("t-pw", "パスワードを忘れました", "accounts", f">{entry.revision}<"):
        assert text in page
    assert list(admin_client.get(LIST_URL, {"is_active__exact": "0"}).context["cl"].result_list) == []


def test_the_change_form_edits_lists_one_per_line_and_shows_versions(admin_client, entry):
    response = admin_client.get(change_url(entry))

    assert response.status_code == 200
    assert response.context["adminform"].form["alt_questions"].value() == "パスワードがわからない\nログインできない"
    assert response.context["adminform"].form["tags"].value() == "パスワード\nログイン"
    (versions,) = response.context["inline_admin_formsets"]
    assert not versions.has_add_permission and not versions.has_change_permission
    assert not versions.has_delete_permission
    assert "再設定ページから変更できます。" in response.content.decode()


def test_saving_the_change_form_goes_through_the_service(admin_client, admin_user, entry):
    data = form_data(admin_client.get(change_url(entry)))
    data |= {
        "answer": "  再設定ページから変更できます。\r\nメールも確認してください。  ",
        "alt_questions": "パスワードがわからない\r\n\r\nパスワードを再発行したい\r\n",
    }

    response = admin_client.post(change_url(entry), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    entry.refresh_from_db()
    assert entry.answer == "再設定ページから変更できます。\nメールも確認してください。"
    assert entry.alt_questions == ["パスワードがわからない", "パスワードを再発行したい"]
    revision = KbRevision.objects.get(number=entry.revision)
    assert revision.actor == admin_user.username and revision.entries_changed == 1
    old, new = entry.versions.order_by("revision")
    assert old.answer == "再設定ページから変更できます。" and old.revision == entry.revision - 1
    assert new.answer == entry.answer and new.actor == admin_user.username


def test_saving_without_changes_makes_no_revision(admin_client, entry):
    revisions = KbRevision.objects.count()

    response = admin_client.post(change_url(entry), form_data(admin_client.get(change_url(entry))))

    assert response.status_code == 302
    assert KbRevision.objects.count() == revisions and entry.versions.count() == 1


def test_adding_an_entry_goes_through_the_service(admin_client):
    data = form_data(admin_client.get(ADD_URL)) | {
        "external_id": "t-new",
        "question": "領収書は出せますか",
        "answer": "マイページから発行できます。",
        "category": "billing",
        "tags": "領収書\n請求",
        "is_active": "on",
    }

    response = admin_client.post(ADD_URL, data)

    assert response.status_code == 302
    created = FaqEntry.objects.get(external_id="t-new")
    assert created.tags == ["領収書", "請求"] and created.alt_questions == []
    assert created.versions.get().revision == created.revision == KbRevision.objects.get(note="admin add t-new").number


def test_adding_an_existing_id_is_refused(admin_client, entry):
    data = form_data(admin_client.get(ADD_URL)) | {"external_id": "t-pw", "question": "別の質問", "answer": "別の回答"}

    response = admin_client.post(ADD_URL, data)

    assert response.status_code == 200 and "external_id" in response.context["adminform"].form.errors
    entry.refresh_from_db()
    assert entry.question == "パスワードを忘れました" and entry.versions.count() == 1


def test_the_form_applies_the_import_rules(admin_client, entry):
    data = form_data(admin_client.get(change_url(entry))) | {"question": "ベル\x07", "tags": "a|b"}

    response = admin_client.post(change_url(entry), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["question"] == ["question contains a control character (U+0007) at character 3"]
    assert errors["tags"] == ['tags item 1 must not contain "|"']
    assert entry.versions.count() == 1


def test_delete_is_not_available(admin_client, entry):
    assert admin_client.get(reverse("admin:faq_faqentry_delete", args=[entry.pk])).status_code == 403
    response = admin_client.get(LIST_URL)
    assert "delete_selected" not in dict(response.context["cl"].model_admin.get_actions(response.wsgi_request))
    assert "deletelink" not in admin_client.get(change_url(entry)).content.decode()

    admin_client.post(LIST_URL, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})

    assert FaqEntry.objects.filter(pk=entry.pk).exists()


def test_deactivating_goes_through_the_service_and_keeps_the_entry(admin_client, entry):
    response = admin_client.post(LIST_URL, {"action": "deactivate_selected", "_selected_action": [entry.pk]})

    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.is_active is False
    assert [v.is_active for v in entry.versions.order_by("revision")] == [True, False]
    assert KbRevision.objects.get(number=entry.revision).note == "admin deactivated 1 entries"


def test_kb_revisions_are_listed_read_only(admin_client, entry):
    revision = KbRevision.objects.get(number=entry.revision)

    assert admin_client.get(reverse("admin:faq_kbrevision_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:faq_kbrevision_add")).status_code == 403
    change = reverse("admin:faq_kbrevision_change", args=[revision.pk])
    assert admin_client.get(change).status_code == 200  # view only
    assert admin_client.post(change, {"note": "edited"}).status_code == 403
    assert admin_client.get(reverse("admin:faq_kbrevision_delete", args=[revision.pk])).status_code == 403
    revision.refresh_from_db()
    assert revision.note == "test data"


def test_versions_cannot_be_changed_through_the_entry_form(admin_client, entry):
    data = form_data(admin_client.get(change_url(entry))) | {"answer": "新しい回答"}
    version = entry.versions.get()
    data |= {"versions-0-id": version.pk, "versions-0-entry": entry.pk, "versions-0-answer": "改ざん"}

    admin_client.post(change_url(entry), data)

    assert FaqEntryVersion.objects.get(pk=version.pk).answer == "再設定ページから変更できます。"
