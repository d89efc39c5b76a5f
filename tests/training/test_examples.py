"""Training examples: one per correction, made in the correction's transaction; review decisions and edits."""

from __future__ import annotations

import pytest

from apps.training import services
from apps.training.models import Correction, ReviewDecision, TrainingExample
from tests.training import factories
from tests.training.factories import ATTRIBUTES

pytestmark = pytest.mark.django_db


def test_a_correction_creates_its_example_waiting_for_review(operator):
    correction = factories.correction(operator=operator, chosen="正しい回答です。")
    example = TrainingExample.objects.get(correction=correction)
    assert example.status == TrainingExample.Status.PENDING
    assert example.chosen_text == "正しい回答です。"
    assert example.rejected_text == correction.rejected_text
    assert example.attributes == ATTRIBUTES
    assert example.conversation_id == correction.conversation_id
    # The snapshot of what the model saw stays on the correction, with the model and KB revision.
    assert correction.context["turns"][-1] == {
        "role": "user",
        "content": "注文した商品がまだ届きません。いつ届きますか？",
    }
    assert correction.context["faq"][0]["faq_id"] == "DLV-001"
    assert (correction.kb_revision, correction.model_id) == (1, "karakuri-lm-test")


def test_a_copilot_edit_creates_an_example_too(operator):
    factories.faq_entries()
    customer, _ = factories.conversation_with_reply()
    correction = services.correction_create(
        operator=operator,
        customer_message=customer,
        kind=Correction.Kind.COPILOT_EDIT,
        rejected_text="下書きの文面",
        chosen_text="送った文面",
        no_faq_covers=True,
        attributes=ATTRIBUTES,
        draft_provenance={"kb_revision": 1},
    )
    assert correction.example.chosen_text == "送った文面"
    assert correction.example.rejected_text == "下書きの文面"


def test_no_correction_is_stored_without_its_example(operator, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "example_create", broken)
    with pytest.raises(RuntimeError):
        factories.correction(operator=operator)
    assert not Correction.objects.exists()


def test_approving_records_who_decided(operator, reviewer):
    example = factories.correction(operator=operator).example
    services.example_decide(example_id=example.id, actor=reviewer, action="approve", revision=example.revision)
    example.refresh_from_db()
    assert example.status == TrainingExample.Status.APPROVED
    assert example.reviewed_by == reviewer and example.reviewed_at is not None
    decision = ReviewDecision.objects.get(example=example)
    assert (decision.action, decision.actor, decision.from_status, decision.to_status) == (
        "approve",
        reviewer,
        "pending",
        "approved",
    )


def test_rejecting_keeps_it_out(operator, reviewer):
    example = factories.correction(operator=operator).example
    services.example_decide(example_id=example.id, actor=reviewer, action="reject", revision=example.revision)
    example.refresh_from_db()
    assert example.status == TrainingExample.Status.REJECTED
    assert services.exportable_count() == 0


def test_approving_an_edited_text_stores_the_edit_then_approves(operator, reviewer):
    example = factories.correction(operator=operator, chosen="元の回答").example
    services.example_decide(
        example_id=example.id,
        actor=reviewer,
        action="approve",
        revision=example.revision,
        chosen_text="  直した回答  ",
        attributes={**ATTRIBUTES, "humor": 1},
    )
    example.refresh_from_db()
    assert (example.status, example.chosen_text, example.attributes["humor"]) == ("approved", "直した回答", 1)
    assert [d.action for d in example.decisions.order_by("id")] == ["edit", "approve"]
    assert example.decisions.order_by("id").first().before["chosen_text"] == "元の回答"
    assert example.correction.chosen_text == "元の回答", "the correction itself is never changed"


def test_editing_after_approval_sends_it_back_to_review(operator, reviewer):
    example = factories.approved_example(operator=operator, reviewer=reviewer)
    services.example_edit(
        example_id=example.id,
        actor=reviewer,
        revision=example.revision,
        chosen_text="もっと良い回答",
        attributes=example.attributes,
    )
    example.refresh_from_db()
    assert example.status == TrainingExample.Status.PENDING
    assert example.reviewed_by is None
    assert example.decisions.first().action == "edit"


def test_an_edit_that_changes_nothing_keeps_the_decision(operator, reviewer):
    example = factories.approved_example(operator=operator, reviewer=reviewer)
    services.example_edit(
        example_id=example.id,
        actor=reviewer,
        revision=example.revision,
        chosen_text=example.chosen_text,
        attributes=example.attributes,
    )
    example.refresh_from_db()
    assert example.status == TrainingExample.Status.APPROVED


def test_a_decision_on_a_stale_screen_is_refused(operator, reviewer):
    example = factories.correction(operator=operator).example
    stale = example.revision
    services.example_decide(example_id=example.id, actor=reviewer, action="reject", revision=stale)
    with pytest.raises(services.ExampleConflict):
        services.example_decide(example_id=example.id, actor=reviewer, action="approve", revision=stale)
    example.refresh_from_db()
    assert example.status == TrainingExample.Status.REJECTED


@pytest.mark.parametrize(
    ("chosen", "attributes", "field"),
    [
        ("", ATTRIBUTES, "chosen_text"),
        ("あ" * 5001, ATTRIBUTES, "chosen_text"),
        ("回答", {**ATTRIBUTES, "humor": 5}, "attributes"),
        ("回答", {"humor": 1}, "attributes"),
    ],
)
def test_it_rejects_a_bad_edit(operator, reviewer, chosen, attributes, field):
    example = factories.correction(operator=operator).example
    with pytest.raises(services.ExampleInvalid) as caught:
        services.example_edit(
            example_id=example.id, actor=reviewer, revision=example.revision, chosen_text=chosen, attributes=attributes
        )
    assert field in caught.value.errors


def test_the_supervisors_group_gets_the_training_permissions_from_the_migration():
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    migration = importlib.import_module(
        "apps.training.migrations.0003_examples_for_corrections_and_supervisor_permissions"
    )
    Group.objects.filter(name="supervisors").delete()
    migration.grant_supervisors(apps, None)
    granted = {p.codename for p in Group.objects.get(name="supervisors").permissions.all()}
    assert {"review_trainingexample", "export_batches", "manage_apitoken"} <= granted
