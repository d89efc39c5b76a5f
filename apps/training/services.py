"""Writes of corrections. The console (corrections and copilot sends) calls `correction_create`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db import transaction

from apps.chat.models import Message
from apps.llm.attributes import ATTRIBUTE_NAMES, InvalidAttributes, validate_attributes
from apps.training.models import Correction

MAX_REASON_TAGS = 20
MAX_TEXT_CHARS = 5000


class CorrectionInvalid(ValueError):
    """A correction that cannot be stored; `errors` maps field names to reasons (shown in the console)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def correction_context(*, customer_message: Message, reply_provenance: Mapping | None) -> dict:
    """Snapshot of what the model saw for `customer_message`: the turns and the FAQ context it was given."""
    from apps.chat.pipeline import reply_request_build
    from apps.faq.search import SearchHit, SearchResult

    provenance = reply_provenance or {}
    # Rebuild the FAQ context from the reply's provenance (what was retrieved then), not from today's index.
    from apps.faq.models import FaqEntryVersion

    hits = []
    for f in provenance.get("faq", []):
        version = (
            FaqEntryVersion.objects.filter(
                entry__external_id=f["id"], revision__lte=provenance.get("kb_revision") or 10**9
            )
            .order_by("-revision")
            .first()
        )
        if version is not None:
            hits.append(
                SearchHit(
                    external_id=f["id"],
                    question=version.question,
                    answer=version.answer,
                    category=version.category,
                    score=f["score"],
                    sparse_score=f.get("sparse"),
                    dense_score=f.get("dense"),
                )
            )
    search = SearchResult(
        query=customer_message.text,
        hits=hits,
        confident=bool(provenance.get("confident")),
        kb_revision=provenance.get("kb_revision") or 0,
        took_ms=0.0,
    )
    request = reply_request_build(customer_message=customer_message, search=search)
    return {
        "turns": [{"role": t.role, "content": t.content} for t in request.turns],
        "faq": [
            {"faq_id": f.faq_id, "question": f.question, "answer": f.answer, "score": f.score} for f in request.faq
        ],
        "confident": request.confident,
        "is_first_reply": request.is_first_reply,
    }


def correction_create(
    *,
    operator,
    customer_message: Message,
    rejected_text: str,
    chosen_text: str,
    kind: str = Correction.Kind.CORRECTION,
    reply_message: Message | None = None,
    faq_external_id: str = "",
    no_faq_covers: bool = False,
    attributes: Mapping[str, object],
    reason_tags: Sequence[str] = (),
    draft_provenance: Mapping | None = None,
) -> Correction:
    """Validate and store one correction, all or nothing. Raises CorrectionInvalid naming each bad field.

    For a copilot edit pass the draft's provenance (same shape as a bot reply's) as `draft_provenance`; for a
    correction of a bot reply it comes from `reply_message`.
    """
    errors: dict[str, str] = {}
    if kind not in Correction.Kind.values:
        errors["kind"] = f"must be one of {', '.join(Correction.Kind.values)}"
    chosen = (chosen_text or "").strip() if isinstance(chosen_text, str) else ""
    if not chosen:
        errors["chosen_text"] = "write what the bot should have said"
    elif len(chosen) > MAX_TEXT_CHARS:
        errors["chosen_text"] = f"at most {MAX_TEXT_CHARS} characters"
    if faq_external_id and no_faq_covers:
        errors["faq_external_id"] = "pick an FAQ or mark that no FAQ covers this, not both"
    elif not faq_external_id and not no_faq_covers:
        errors["faq_external_id"] = "pick the FAQ that answers the question, or mark that no FAQ covers it"
    elif faq_external_id:
        from apps.faq.models import FaqEntry

        if not FaqEntry.objects.filter(external_id=faq_external_id).exists():
            errors["faq_external_id"] = f"no FAQ entry {faq_external_id!r}"
    try:
        checked = validate_attributes(attributes)
        missing = [n for n in ATTRIBUTE_NAMES if n not in checked]
        if missing:
            errors["attributes"] = "rate every attribute; missing: " + ", ".join(missing)
    except InvalidAttributes as exc:
        errors["attributes"] = str(exc)
        checked = {}
    tags = list(reason_tags)
    if len(tags) > MAX_REASON_TAGS or not all(isinstance(t, str) and 0 < len(t.strip()) <= 50 for t in tags):
        errors["reason_tags"] = f"up to {MAX_REASON_TAGS} tags of 1 to 50 characters"
    if customer_message.role != Message.Role.CUSTOMER:
        errors["customer_message"] = "must be a customer message"
    if reply_message is not None and reply_message.conversation_id != customer_message.conversation_id:
        errors["reply_message"] = "must belong to the same conversation"
    if errors:
        raise CorrectionInvalid(errors)

    provenance = (
        reply_message.provenance if reply_message is not None and reply_message.role == Message.Role.BOT else {}
    )
    with transaction.atomic():
        return Correction.objects.create(
            kind=kind,
            conversation_id=customer_message.conversation_id,
            customer_message=customer_message,
            reply_message=reply_message,
            rejected_text=rejected_text or "",
            chosen_text=chosen,
            faq_external_id=faq_external_id,
            no_faq_covers=no_faq_covers,
            attributes=checked,
            reason_tags=[t.strip() for t in tags],
            context=correction_context(customer_message=customer_message, reply_provenance=provenance),
            kb_revision=provenance.get("kb_revision"),
            backend=provenance.get("backend", ""),
            model_id=provenance.get("model_id", ""),
            operator=operator,
        )
