"""Writes of the operator console. Views and the operator consumer call these; each checks the user's role,
does the write through the owning app's service (apps.chat.operator_services, apps.training.services,
apps.faq.services) and records an audit entry in the same transaction, so an action and its audit entry are
committed together or not at all.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from apps.chat import events
from apps.chat import operator_services as chat_ops
from apps.chat.models import Conversation, Message
from apps.console.models import AuditEntry, CannedResponse, CopilotDraft
from apps.faq.models import FaqEntry
from apps.faq.services import FaqRow, faq_entries_upsert
from apps.llm.attributes import resolve_attributes
from apps.training.models import Correction
from apps.training.services import CorrectionInvalid, correction_create

logger = logging.getLogger(__name__)

# A customer's question longer than this is not kept as an FAQ phrasing: it is a story, not a question.
MAX_PHRASING_CHARS = 200


def require_perm(user, perm: str) -> None:
    """PermissionDenied unless `user` is an active user with `perm` (e.g. "console.handle_conversations")."""
    if not (user and user.is_active and user.has_perm(perm)):
        raise PermissionDenied(perm)


def audit_record(
    *, actor, action: str, conversation_id: uuid.UUID | None = None, target: str = "", details: dict | None = None
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username(),
        action=action,
        conversation_id=conversation_id,
        target=target[:200],
        details=details or {},
    )


# Conversations.


def console_take_over(*, user, conversation_id: uuid.UUID) -> Conversation:
    """Take over a conversation (atomic claim; see apps.chat.operator_services.conversation_take_over)."""
    require_perm(user, "console.handle_conversations")
    with transaction.atomic():
        conversation = chat_ops.conversation_take_over(conversation_id=conversation_id, operator=user)
        audit_record(actor=user, action=AuditEntry.Action.TAKE_OVER, conversation_id=conversation_id)
    return conversation


def console_hand_back(*, user, conversation_id: uuid.UUID) -> Conversation:
    require_perm(user, "console.handle_conversations")
    with transaction.atomic():
        conversation = chat_ops.conversation_hand_back(conversation_id=conversation_id, operator=user)
        audit_record(actor=user, action=AuditEntry.Action.HAND_BACK, conversation_id=conversation_id)
    return conversation


def console_close(*, user, conversation_id: uuid.UUID) -> Conversation:
    require_perm(user, "console.handle_conversations")
    force = user.has_perm("console.supervise_conversations")
    with transaction.atomic():
        conversation = chat_ops.conversation_close(conversation_id=conversation_id, operator=user, force=force)
        audit_record(actor=user, action=AuditEntry.Action.CLOSE, conversation_id=conversation_id)
    return conversation


@dataclass(frozen=True)
class ReplySent:
    message: Message
    correction: Correction | None


def console_reply_send(
    *,
    user,
    conversation_id: uuid.UUID,
    text: object,
    client_msg_id: str | None = None,
    draft_id: int | None = None,
    faq_external_id: str = "",
    no_faq_covers: bool | None = None,
    canned_shortcuts: Sequence[str] = (),
) -> ReplySent:
    """Send the holder's reply to the customer. With `draft_id` (the copilot draft the operator started from)
    the pair (draft, sent text) is stored as a correction of kind copilot_edit in the same transaction; if that
    cannot be stored, nothing is sent.

    The correction's FAQ is `faq_external_id` or `no_faq_covers` when the operator chose, else the FAQ the draft
    cited, else "no FAQ covers this". Its attributes are the deployment's defaults: the sent text is what a
    careful person wrote, the reply the attributes steer the model towards.
    """
    require_perm(user, "console.handle_conversations")
    if client_msg_id is not None:
        # A resend after a dropped connection: the first one was stored (with its correction and audit entry).
        existing = Message.objects.filter(
            conversation_id=conversation_id, client_msg_id=client_msg_id, role=Message.Role.OPERATOR
        ).first()
        if existing is not None:
            return ReplySent(message=existing, correction=Correction.objects.filter(reply_message=existing).first())
    with transaction.atomic():
        draft = None
        if draft_id is not None:
            draft = (
                CopilotDraft.objects.select_related("customer_message")
                .filter(id=draft_id, conversation_id=conversation_id)
                .first()
            )
            if draft is None:
                raise chat_ops.OperatorActionRefused("invalid_field", "draft_id")
        provenance: dict = {}
        if draft is not None:
            provenance["draft_id"] = draft.id
        if canned_shortcuts:
            provenance["canned"] = [str(s)[:32] for s in canned_shortcuts][:10]
        message = chat_ops.operator_message_create(
            conversation_id=conversation_id,
            operator=user,
            text=text,
            client_msg_id=client_msg_id,
            provenance=provenance,
        )
        correction = None
        if draft is not None:
            if no_faq_covers is None and not faq_external_id:
                cited = draft.provenance.get("cited_faq_ids") or []
                faq_external_id = cited[0] if cited else ""
                no_faq_covers = not cited
            correction = correction_create(
                operator=user,
                kind=Correction.Kind.COPILOT_EDIT,
                customer_message=draft.customer_message,
                reply_message=message,
                rejected_text=draft.text,
                chosen_text=message.text,
                faq_external_id=faq_external_id or "",
                no_faq_covers=bool(no_faq_covers),
                attributes=resolve_attributes(),
                draft_provenance=draft.provenance,
            )
        audit_record(
            actor=user,
            action=AuditEntry.Action.COPILOT_EDIT if correction else AuditEntry.Action.REPLY,
            conversation_id=conversation_id,
            target=f"#{message.seq}",
            details={"correction_id": correction.id} if correction else {},
        )
    return ReplySent(message=message, correction=correction)


# Copilot drafts.


def copilot_draft_request(*, user, conversation_id: uuid.UUID) -> tuple[CopilotDraft | None, int | None]:
    """The draft for the last customer message of a conversation the user holds.

    Returns (draft, None) when it exists, (None, customer_message_id) when it must be generated
    (`copilot_draft_generate`), (None, None) when there is nothing to draft for.
    """
    require_perm(user, "console.handle_conversations")
    conversation = Conversation.objects.get(id=conversation_id)
    if conversation.status != Conversation.Status.OPERATOR or conversation.assigned_operator_id != user.pk:
        raise chat_ops.OperatorActionRefused("not_holder")
    last = Message.objects.filter(conversation_id=conversation_id, role=Message.Role.CUSTOMER).order_by("-seq").first()
    if last is None:
        return None, None
    draft = CopilotDraft.objects.filter(customer_message=last).first()
    return (draft, None) if draft is not None else (None, last.id)


def copilot_draft_generate(*, customer_message_id: int) -> CopilotDraft | None:
    """Generate and store the copilot draft for a customer message, then tell the operators (after commit).

    Runs where bot replies run (a worker thread, or a Celery worker on the `generation` queue). Does nothing if
    nobody holds the conversation any more.
    """
    from apps.chat.pipeline import reply_draft

    message = Message.objects.select_related("conversation").get(id=customer_message_id)
    if message.conversation.status != Conversation.Status.OPERATOR:
        return None
    existing = CopilotDraft.objects.filter(customer_message_id=customer_message_id).first()
    if existing is not None:
        return existing
    text, provenance = reply_draft(customer_message_id=customer_message_id)
    try:
        with transaction.atomic():
            draft = CopilotDraft.objects.create(
                conversation_id=message.conversation_id, customer_message=message, text=text, provenance=provenance
            )
            transaction.on_commit(lambda: events.publish_operators(draft_ready_event(draft)))
    except IntegrityError:  # generated twice at once; the other one is stored and announced
        return CopilotDraft.objects.get(customer_message_id=customer_message_id)
    return draft


def draft_ready_event(draft: CopilotDraft) -> dict:
    provenance = draft.provenance
    cited = set(provenance.get("cited_faq_ids") or [])
    return {
        "type": "draft.ready",
        "conversation_id": str(draft.conversation_id),
        "draft": {
            "id": draft.id,
            "in_reply_to_seq": draft.customer_message.seq,
            "text": draft.text,
            "confident": bool(provenance.get("confident")),
            "cited_faq_ids": sorted(cited),
            "faq": provenance.get("faq", []),
            "provenance": provenance,
        },
    }


# Corrections and the FAQ.


@dataclass(frozen=True)
class FaqEdit:
    """Create an FAQ entry (`action="create"`) or replace the answer of the picked one (`"update"`) from a
    correction."""

    action: str
    external_id: str
    question: str = ""
    answer: str = ""
    category: str = ""


def correction_submit(
    *,
    user,
    reply_message: Message,
    chosen_text: str,
    faq_external_id: str = "",
    no_faq_covers: bool = False,
    attributes: Mapping[str, object],
    reason_tags: Sequence[str] = (),
    add_phrasing: bool = False,
    faq_edit: FaqEdit | None = None,
) -> Correction:
    """Store the correction of one bot reply, and in the same transaction optionally create or edit the FAQ
    entry it points to and add the customer's question to that entry's phrasings. All or nothing: raises
    CorrectionInvalid (field → reason) or PermissionDenied and then nothing is saved.
    """
    require_perm(user, "console.correct_replies")
    if faq_edit is not None:
        require_perm(user, "console.edit_faq")
    if add_phrasing:
        require_perm(user, "console.add_faq_phrasing")
    if reply_message.role != Message.Role.BOT or reply_message.in_reply_to_id is None:
        raise CorrectionInvalid({"reply_message": "not a bot reply to a customer message"})
    customer_message = reply_message.in_reply_to
    with transaction.atomic():
        if faq_edit is not None:
            faq_external_id = _faq_edit_apply(user=user, edit=faq_edit, conversation_id=reply_message.conversation_id)
            no_faq_covers = False
        correction = correction_create(
            operator=user,
            kind=Correction.Kind.CORRECTION,
            customer_message=customer_message,
            reply_message=reply_message,
            rejected_text=reply_message.text,
            chosen_text=chosen_text,
            faq_external_id=faq_external_id,
            no_faq_covers=no_faq_covers,
            attributes=attributes,
            reason_tags=reason_tags,
        )
        audit_record(
            actor=user,
            action=AuditEntry.Action.CORRECTION,
            conversation_id=reply_message.conversation_id,
            target=f"#{reply_message.seq}",
            details={"correction_id": correction.id, "faq": faq_external_id, "no_faq_covers": no_faq_covers},
        )
        if add_phrasing and faq_external_id:
            faq_phrasing_add(
                user=user,
                faq_external_id=faq_external_id,
                phrasing=customer_message.text,
                conversation_id=reply_message.conversation_id,
            )
    return correction


def _faq_edit_apply(*, user, edit: FaqEdit, conversation_id: uuid.UUID) -> str:
    errors: dict[str, str] = {}
    external_id = (edit.external_id or "").strip()
    answer = (edit.answer or "").strip()
    if not answer:
        errors["faq_answer"] = "FAQの回答を入力してください。"
    if edit.action == "create":
        question = (edit.question or "").strip()
        if not external_id or len(external_id) > 64:
            errors["faq_new_id"] = "新しいFAQのIDを64文字以内で入力してください。"
        elif FaqEntry.objects.filter(external_id=external_id).exists():
            errors["faq_new_id"] = f"FAQ「{external_id}」はすでにあります。"
        if not question:
            errors["faq_question"] = "FAQの質問を入力してください。"
        if errors:
            raise CorrectionInvalid(errors)
        row = FaqRow(external_id=external_id, question=question, answer=answer, category=edit.category.strip())
        action = AuditEntry.Action.FAQ_CREATE
    elif edit.action == "update":
        entry = FaqEntry.objects.filter(external_id=external_id).first()
        if entry is None:
            errors["faq_external_id"] = "編集するFAQを選んでください。"
        if errors:
            raise CorrectionInvalid(errors)
        row = _row_of(entry, answer=answer)
        action = AuditEntry.Action.FAQ_UPDATE
    else:
        raise CorrectionInvalid({"faq_action": "unknown action"})
    report = faq_entries_upsert(rows=[row], actor=user.get_username(), note="console correction")
    audit_record(
        actor=user,
        action=action,
        conversation_id=conversation_id,
        target=f"FAQ {external_id}",
        details={"kb_revision": report.revision},
    )
    return external_id


def _row_of(entry: FaqEntry, **changes) -> FaqRow:
    fields = {
        "external_id": entry.external_id,
        "question": entry.question,
        "answer": entry.answer,
        "category": entry.category,
        "tags": tuple(entry.tags),
        "alt_questions": tuple(entry.alt_questions),
        "is_active": entry.is_active,
    }
    fields.update(changes)
    return FaqRow(**fields)


def faq_phrasing_add(*, user, faq_external_id: str, phrasing: str, conversation_id: uuid.UUID | None = None) -> bool:
    """Add a customer's wording as an alternative phrasing of an FAQ entry ("phrasings learned from use"), so
    the next customer who asks that way is matched. Returns False (and changes nothing) when the wording is
    already the question or a phrasing, or too long to be one."""
    require_perm(user, "console.add_faq_phrasing")
    phrasing = " ".join((phrasing or "").split())
    if not phrasing or len(phrasing) > MAX_PHRASING_CHARS:
        return False
    with transaction.atomic():
        entry = FaqEntry.objects.select_for_update().filter(external_id=faq_external_id).first()
        if entry is None or phrasing == entry.question or phrasing in entry.alt_questions:
            return False
        report = faq_entries_upsert(
            rows=[_row_of(entry, alt_questions=(*entry.alt_questions, phrasing))],
            actor=user.get_username(),
            note="phrasing learned from a correction",
        )
        audit_record(
            actor=user,
            action=AuditEntry.Action.FAQ_PHRASING,
            conversation_id=conversation_id,
            target=f"FAQ {faq_external_id}",
            details={"phrasing": phrasing, "kb_revision": report.revision},
        )
    return True


# Canned responses.


def canned_response_save(
    *, user, shortcut: str, title: str, text: str, instance: CannedResponse | None = None
) -> CannedResponse:
    """Create (instance=None) or update a canned response. Input is validated by the form beforehand."""
    require_perm(user, "console.change_cannedresponse" if instance else "console.add_cannedresponse")
    with transaction.atomic():
        canned = instance or CannedResponse(created_by=user)
        canned.shortcut, canned.title, canned.text = shortcut, title, text
        canned.full_clean()
        canned.save()
        audit_record(actor=user, action=AuditEntry.Action.CANNED_SAVE, target=f"/{canned.shortcut}")
    return canned


def canned_response_delete(*, user, canned: CannedResponse) -> None:
    require_perm(user, "console.delete_cannedresponse")
    with transaction.atomic():
        audit_record(actor=user, action=AuditEntry.Action.CANNED_DELETE, target=f"/{canned.shortcut}")
        canned.delete()
