"""Writes of the training app: corrections and their training examples, review decisions, export batches, the
batch queue and its API tokens.

The console (corrections and copilot sends) calls `correction_create`, which also creates the example to review.
The review screen calls `example_decide` / `example_edit`; the console's export button and the
`export_training_data` command call `batch_export`; the queue API calls `batch_claim`, `batch_ack`,
`batch_release` and `batch_extend`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.chat.models import Message
from apps.llm.attributes import ATTRIBUTE_NAMES, InvalidAttributes, validate_attributes
from apps.training.formats import FORMATS
from apps.training.models import ApiToken, Correction, ExportBatch, ReviewDecision, TrainingExample
from apps.training.replay import ReplayCorpusError, corpus_files

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

    if draft_provenance is not None:
        provenance = dict(draft_provenance)
    elif reply_message is not None and reply_message.role == Message.Role.BOT:
        provenance = reply_message.provenance
    else:
        provenance = {}
    with transaction.atomic():
        correction = Correction.objects.create(
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
        # Same transaction: a correction never exists without its training example, and vice versa.
        example_create(correction=correction)
        return correction


# --- Training examples and their review ------------------------------------------------------------------


class ExampleInvalid(ValueError):
    """An edit that cannot be stored; `errors` maps field names to reasons."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class ExampleConflict(Exception):
    """The example changed since the screen showing it was loaded (its revision moved on)."""


def example_create(*, correction: Correction) -> TrainingExample:
    """The training example of a new correction, waiting for review. Called inside `correction_create`."""
    return TrainingExample.objects.create(
        correction=correction,
        conversation_id=correction.conversation_id,
        chosen_text=correction.chosen_text,
        rejected_text=correction.rejected_text,
        attributes=correction.attributes,
    )


def _checked_edit(chosen_text: object, attributes: object) -> tuple[str, dict[str, int]]:
    errors: dict[str, str] = {}
    chosen = chosen_text.strip() if isinstance(chosen_text, str) else ""
    if not chosen:
        errors["chosen_text"] = "write what the bot should have said"
    elif len(chosen) > MAX_TEXT_CHARS:
        errors["chosen_text"] = f"at most {MAX_TEXT_CHARS} characters"
    checked: dict[str, int] = {}
    try:
        checked = validate_attributes(attributes if isinstance(attributes, dict) else {})
        missing = [n for n in ATTRIBUTE_NAMES if n not in checked]
        if missing:
            errors["attributes"] = "rate every attribute; missing: " + ", ".join(missing)
    except InvalidAttributes as exc:
        errors["attributes"] = str(exc)
    if errors:
        raise ExampleInvalid(errors)
    return chosen, checked


def _locked_example(example_id: int, revision: int) -> TrainingExample:
    example = TrainingExample.objects.select_for_update().get(id=example_id)
    if example.revision != revision:
        raise ExampleConflict(f"example {example_id} is at revision {example.revision}, not {revision}")
    return example


def _apply_edit(example: TrainingExample, *, actor, chosen: str, attributes: dict[str, int]) -> bool:
    if chosen == example.chosen_text and attributes == example.attributes:
        return False
    before_status = example.status
    ReviewDecision.objects.create(
        example=example,
        action=ReviewDecision.Action.EDIT,
        actor=actor,
        from_status=before_status,
        to_status=TrainingExample.Status.PENDING,
        before={"chosen_text": example.chosen_text, "attributes": example.attributes},
    )
    example.chosen_text, example.attributes = chosen, attributes
    # Whatever was decided was decided about other text: it needs a decision again.
    example.status = TrainingExample.Status.PENDING
    example.reviewed_by, example.reviewed_at = None, None
    example.revision += 1
    return True


def example_edit(*, example_id: int, actor, revision: int, chosen_text: object, attributes: object) -> TrainingExample:
    """Change an example's chosen text or attributes. A decided example goes back to review.

    Raises ExampleInvalid for bad values and ExampleConflict when `revision` is not the example's current one.
    """
    chosen, checked = _checked_edit(chosen_text, attributes)
    with transaction.atomic():
        example = _locked_example(example_id, revision)
        if _apply_edit(example, actor=actor, chosen=chosen, attributes=checked):
            example.save()
    return example


def example_decide(
    *,
    example_id: int,
    actor,
    action: str,
    revision: int,
    chosen_text: object = None,
    attributes: object = None,
) -> TrainingExample:
    """Approve or reject an example, recording who decided.

    With `chosen_text`/`attributes` different from the stored ones, an approval stores the edit first (one
    step on the review screen: fix the text, approve it); a rejection ignores them. Raises ExampleConflict
    when `revision` is stale, ExampleInvalid for a bad edit or action.
    """
    if action not in (ReviewDecision.Action.APPROVE, ReviewDecision.Action.REJECT):
        raise ExampleInvalid({"action": "approve or reject"})
    edit = None
    if action == ReviewDecision.Action.APPROVE and (chosen_text is not None or attributes is not None):
        edit = (chosen_text, attributes)
    with transaction.atomic():
        example = _locked_example(example_id, revision)
        if edit is not None:
            chosen, checked = _checked_edit(
                example.chosen_text if edit[0] is None else edit[0],
                example.attributes if edit[1] is None else edit[1],
            )
            _apply_edit(example, actor=actor, chosen=chosen, attributes=checked)
        to_status = (
            TrainingExample.Status.APPROVED
            if action == ReviewDecision.Action.APPROVE
            else TrainingExample.Status.REJECTED
        )
        ReviewDecision.objects.create(
            example=example, action=action, actor=actor, from_status=example.status, to_status=to_status
        )
        example.status = to_status
        example.reviewed_by, example.reviewed_at = actor, timezone.now()
        example.revision += 1
        example.save()
    return example


# --- Export batches ----------------------------------------------------------------------------------------


class ExportInvalid(ValueError):
    """Export parameters that cannot be used; `errors` maps parameter names to reasons."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class NothingToExport(Exception):
    """No approved example matches (all exported already, or none in the date range)."""


def exportable_count(*, since: datetime | None = None, until: datetime | None = None, reexport: bool = False) -> int:
    examples = TrainingExample.objects.filter(status=TrainingExample.Status.APPROVED)
    if since:
        examples = examples.filter(created_at__gte=since)
    if until:
        examples = examples.filter(created_at__lt=until)
    if not reexport:
        examples = examples.filter(export_batch__isnull=True)
    return examples.count()


def batch_export(
    *,
    format: str,
    requested_by=None,
    since: datetime | None = None,
    until: datetime | None = None,
    reexport: bool = False,
    replay_corpus: str | Path | None = None,
    replay_ratio: float | None = None,
    seed: int | None = None,
    validation_ratio: float | None = None,
    out_dir: str | Path | None = None,
) -> ExportBatch:
    """Queue an export batch; the Celery task on the `export` queue writes it (after this transaction commits).

    Approved examples not yet in a batch are exported (with `reexport`, all approved ones in the date range,
    already exported or not). `replay_ratio` (default 0.2 with a corpus) is the replay lines' share of the
    training file; `seed` (random when not given) is recorded and fixes the replay sample and the split.
    Raises ExportInvalid naming each bad parameter, NothingToExport when no example matches.
    """
    errors: dict[str, str] = {}
    if format not in FORMATS:
        errors["format"] = f"one of {', '.join(FORMATS)}"
    corpus = ""
    if replay_corpus:
        path = Path(replay_corpus).expanduser().resolve()
        try:
            corpus_files(path)
            corpus = str(path)
        except (ReplayCorpusError, OSError) as exc:
            errors["replay_corpus"] = str(exc)
    ratio = (0.2 if corpus else 0.0) if replay_ratio is None else float(replay_ratio)
    if not 0.0 <= ratio <= 0.9:
        errors["replay_ratio"] = "from 0 to 0.9"
    elif ratio > 0 and not replay_corpus:
        errors["replay_ratio"] = "needs a replay corpus"
    validation = settings.TRAINING_VALIDATION_RATIO if validation_ratio is None else float(validation_ratio)
    if not 0.0 <= validation <= 0.5:
        errors["validation_ratio"] = "from 0 to 0.5"
    if seed is not None and not 0 <= seed < 2**63:
        errors["seed"] = "a non-negative integer"
    if since and until and since >= until:
        errors["until"] = "must be after since"
    if errors:
        raise ExportInvalid(errors)
    if not exportable_count(since=since, until=until, reexport=reexport):
        raise NothingToExport("no approved example to export")
    from apps.training.tasks import batch_export_task

    with transaction.atomic():
        batch = ExportBatch.objects.create(
            format=format,
            since=since,
            until=until,
            reexport=reexport,
            replay_corpus=corpus,
            replay_ratio=ratio if corpus else 0.0,
            seed=secrets.randbelow(2**31) if seed is None else seed,
            validation_ratio=validation,
            options={
                "pii_kinds": list(settings.TRAINING_PII_KINDS),
                "pii_allow": list(settings.TRAINING_PII_ALLOW),
                "near_duplicate_similarity": settings.TRAINING_NEAR_DUPLICATE_SIMILARITY,
            },
            out_dir=str(Path(out_dir or settings.TRAINING_EXPORT_DIR).expanduser().resolve()),
            requested_by=requested_by,
        )
        transaction.on_commit(lambda: batch_export_task.delay(batch.id))
    return batch


def batch_retry(*, batch_id: int) -> ExportBatch:
    """Run a failed batch again (or one whose worker died and whose lease has run out); it selects afresh."""
    now = timezone.now()
    from apps.training.tasks import batch_export_task

    with transaction.atomic():
        batch = ExportBatch.objects.select_for_update().get(id=batch_id)
        stuck = batch.status == ExportBatch.Status.RUNNING and (batch.lease_until is None or batch.lease_until < now)
        if batch.status != ExportBatch.Status.FAILED and not stuck:
            raise ExportInvalid({"status": f"a {batch.status} batch cannot be retried"})
        if batch.status == ExportBatch.Status.FAILED:
            batch.stage, batch.progress_done, batch.progress_total = "", 0, 0
        batch.status, batch.error, batch.lease_until = ExportBatch.Status.QUEUED, "", None
        batch.save()
        transaction.on_commit(lambda: batch_export_task.delay(batch.id))
    return batch


# --- The batch queue and its tokens ------------------------------------------------------------------------

TOKEN_PREFIX = "kcs_"


class ClaimError(Exception):
    """An ack, release or extend that does not hold the batch's current claim."""


def token_hash(token: str) -> str:
    # Tokens are 256 random bits: a plain SHA-256 cannot be reversed, and lets a request be looked up by index.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def api_token_create(*, name: str, created_by) -> tuple[ApiToken, str]:
    """A new token for the batch queue API. Returns the row and the token itself, which is never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValueError("a token needs a name of 1 to 100 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        name=name, prefix=token[: len(TOKEN_PREFIX) + 6], token_hash=token_hash(token), created_by=created_by
    )
    return row, token


def api_token_revoke(*, token_id: int, revoked_by) -> ApiToken:
    """Revoke a token: every later request with it is refused. Its open claims run out as usual."""
    with transaction.atomic():
        row = ApiToken.objects.select_for_update().get(id=token_id)
        if row.revoked_at is None:
            row.revoked_at, row.revoked_by = timezone.now(), revoked_by
            row.save(update_fields=["revoked_at", "revoked_by"])
    return row


def api_token_authenticate(token: str) -> ApiToken | None:
    """The active token row for a presented token, or None."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = ApiToken.objects.filter(token_hash=token_hash(token), revoked_at__isnull=True).first()
    if row is not None:
        now = timezone.now()
        # At most one write a minute per token, not one per request.
        ApiToken.objects.filter(id=row.id).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(minutes=1))
        ).update(last_used_at=now)
    return row


def _claimable(now: datetime) -> Q:
    return Q(status=ExportBatch.Status.READY) | Q(status=ExportBatch.Status.CLAIMED, claim_expires_at__lt=now)


def batch_claim(*, token: ApiToken, lease_seconds: int | None = None) -> ExportBatch | None:
    """Claim the oldest ready batch (or one whose claim ran out) for `token`; None when there is none.

    On PostgreSQL the candidate row is locked with SKIP LOCKED, so concurrent claimers each take a different
    batch without waiting; the conditional UPDATE makes the claim safe on SQLite too, where row locks do not
    exist.
    """
    lease = timedelta(seconds=lease_seconds or settings.TRAINING_CLAIM_TIMEOUT)
    for _ in range(10):
        now = timezone.now()
        with transaction.atomic():
            batch = (
                ExportBatch.objects.select_for_update(skip_locked=True).filter(_claimable(now)).order_by("id").first()
            )
            if batch is None:
                return None
            claim_id = uuid.uuid4()
            taken = (
                ExportBatch.objects.filter(id=batch.id)
                .filter(_claimable(now))
                .update(
                    status=ExportBatch.Status.CLAIMED,
                    claim_id=claim_id,
                    claimed_by=token,
                    claimed_at=now,
                    claim_expires_at=now + lease,
                )
            )
            if taken:
                batch.refresh_from_db()
                return batch
    return None


def _held(batch_id: int, claim_id: uuid.UUID | str) -> ExportBatch:
    batch = ExportBatch.objects.select_for_update().filter(id=batch_id).first()
    if batch is None:
        raise ExportBatch.DoesNotExist(batch_id)
    if batch.claim_id is None or str(batch.claim_id) != str(claim_id):
        raise ClaimError("this claim is not the batch's current claim (it ran out and was claimed again?)")
    return batch


def batch_ack(*, batch_id: int, claim_id: uuid.UUID | str) -> ExportBatch:
    """The pipeline has consumed the batch. Repeating the same ack is harmless."""
    with transaction.atomic():
        batch = _held(batch_id, claim_id)
        if batch.status == ExportBatch.Status.CONSUMED:
            return batch
        # A claim past its time that nobody has taken since still belongs to its holder.
        batch.status, batch.consumed_at = ExportBatch.Status.CONSUMED, timezone.now()
        batch.save(update_fields=["status", "consumed_at"])
    return batch


def batch_release(*, batch_id: int, claim_id: uuid.UUID | str) -> ExportBatch:
    """Give the batch back to the queue unconsumed."""
    with transaction.atomic():
        batch = _held(batch_id, claim_id)
        if batch.status != ExportBatch.Status.CLAIMED:
            raise ClaimError(f"a {batch.status} batch cannot be released")
        ExportBatch.objects.filter(id=batch.id).update(
            status=ExportBatch.Status.READY, claim_id=None, claimed_by=None, claimed_at=None, claim_expires_at=None
        )
        batch.refresh_from_db()
    return batch


def batch_extend(*, batch_id: int, claim_id: uuid.UUID | str, lease_seconds: int | None = None) -> ExportBatch:
    """Keep holding the batch for another lease (a long download or training run)."""
    lease = timedelta(seconds=lease_seconds or settings.TRAINING_CLAIM_TIMEOUT)
    with transaction.atomic():
        batch = _held(batch_id, claim_id)
        if batch.status != ExportBatch.Status.CLAIMED:
            raise ClaimError(f"a {batch.status} batch cannot be extended")
        batch.claim_expires_at = timezone.now() + lease
        batch.save(update_fields=["claim_expires_at"])
    return batch
