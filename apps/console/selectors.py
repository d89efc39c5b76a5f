"""Reads for the operator console: the queue, one conversation, the knowledge-gap list."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from apps.chat.events import conversation_state, operator_message_payload
from apps.chat.models import Conversation, Message

logger = logging.getLogger(__name__)

# A bot conversation counts as active while its last message is this recent.
ACTIVE_WINDOW = timedelta(hours=24)
RECENT_CLOSED = 20
SECTION_LIMIT = 200
SEARCH_LIMIT = 100
PREVIEW_CHARS = 80

QUEUE_FILTERS = ("all", "waiting", "operator", "mine", "bot", "closed")


def _annotated(qs: QuerySet[Conversation]) -> QuerySet[Conversation]:
    messages = Message.objects.filter(conversation=OuterRef("pk")).exclude(role=Message.Role.SYSTEM).order_by("-seq")
    first_customer = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.CUSTOMER).order_by("seq")
    bot_replies = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.BOT)
    return qs.select_related("assigned_operator").annotate(
        last_text=Subquery(messages.values("text")[:1]),
        last_role=Subquery(messages.values("role")[:1]),
        first_question=Subquery(first_customer.values("text")[:1]),
        thumbs_down=Exists(bot_replies.filter(feedback=-1)),
        unconfident=Exists(bot_replies.filter(provenance__confident=False)),
    )


def queue_row(conversation: Conversation) -> dict:
    """A queue row: the conversation's state plus what the annotations add (see _annotated)."""
    row = conversation_state(conversation)
    row.update(
        last_text=(getattr(conversation, "last_text", None) or "")[:PREVIEW_CHARS],
        last_role=getattr(conversation, "last_role", None),
        first_question=(getattr(conversation, "first_question", None) or "")[:PREVIEW_CHARS],
        thumbs_down=bool(getattr(conversation, "thumbs_down", False)),
        unconfident=bool(getattr(conversation, "unconfident", False)),
    )
    return row


def queue_list(*, user, status: str = "all", q: str = "") -> dict[str, list[dict]]:
    """The live queue's sections, in the order the console shows them: waiting for a person (longest wait
    first), held by a person, bot conversations active in the last day, recently closed.

    `status` narrows to one section ("mine": held by `user`); `q` searches message text and conversation ids.
    """
    base = Conversation.objects.filter(last_seq__gt=0)
    q = (q or "").strip()[:100]
    if q:
        matches = Message.objects.filter(text__icontains=q).values("conversation_id")
        by_id = Q()
        try:
            by_id = Q(id=uuid.UUID(q))
        except ValueError:
            pass
        base = base.filter(Q(id__in=matches) | by_id)
    sections: dict[str, QuerySet[Conversation]] = {
        "waiting": base.filter(status=Conversation.Status.WAITING_FOR_OPERATOR).order_by("waiting_since"),
        "operator": base.filter(status=Conversation.Status.OPERATOR).order_by("-updated_at"),
        "bot": base.filter(status=Conversation.Status.BOT, updated_at__gte=timezone.now() - ACTIVE_WINDOW).order_by(
            "-updated_at"
        ),
        "closed": base.filter(status=Conversation.Status.CLOSED).order_by("-updated_at"),
    }
    if status == "mine":
        sections = {"operator": sections["operator"].filter(assigned_operator=user)}
    elif status in sections:
        sections = {status: sections[status]}
    limits = {"closed": RECENT_CLOSED}
    result = {}
    for name, qs in sections.items():
        limit = SEARCH_LIMIT if q else limits.get(name, SECTION_LIMIT)
        result[name] = [queue_row(c) for c in _annotated(qs)[:limit]]
    return result


def conversation_detail(*, conversation_id: uuid.UUID) -> dict:
    """The whole transcript with provenance, for the conversation view. Raises Conversation.DoesNotExist."""
    conversation = _annotated(Conversation.objects.filter(id=conversation_id)).get()
    messages = Message.objects.filter(conversation_id=conversation_id).order_by("seq")
    return {"conversation": queue_row(conversation), "messages": [operator_message_payload(m) for m in messages]}


# Knowledge gaps.

GAP_WINDOW_DAYS = 30
GAP_MAX_QUESTIONS = 400
# Two questions whose embeddings (mean cosine of the configured embedders) are at least this close are one gap:
# paraphrases of one question score 0.8-0.95 with the default embedders, different questions below 0.65.
GAP_SIMILARITY = 0.75


@dataclass
class GapQuestion:
    text: str
    conversation_id: uuid.UUID
    reply_seq: int
    thumbs_down: bool
    unconfident: bool
    top_faq: dict | None


@dataclass
class Gap:
    """Customer questions the bot answered badly that ask the same thing; the first is the most recent."""

    questions: list[GapQuestion] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.questions)

    @property
    def example(self) -> GapQuestion:
        return self.questions[0]

    @property
    def thumbs_down(self) -> int:
        return sum(q.thumbs_down for q in self.questions)

    @property
    def unconfident(self) -> int:
        return sum(q.unconfident for q in self.questions)


def knowledge_gaps(*, days: int = GAP_WINDOW_DAYS, similarity: float = GAP_SIMILARITY) -> list[Gap]:
    """Customer questions with no confident answer or a thumbs-down, grouped by meaning, biggest group first."""
    since = timezone.now() - timedelta(days=days)
    replies = (
        Message.objects.filter(role=Message.Role.BOT, created_at__gte=since, in_reply_to__isnull=False)
        .filter(Q(provenance__confident=False) | Q(feedback=-1))
        .select_related("in_reply_to")
        .order_by("-created_at")[:GAP_MAX_QUESTIONS]
    )
    questions = []
    for reply in replies:
        hits = reply.provenance.get("faq") or []
        questions.append(
            GapQuestion(
                text=reply.in_reply_to.text,
                conversation_id=reply.conversation_id,
                reply_seq=reply.seq,
                thumbs_down=reply.feedback == -1,
                unconfident=reply.provenance.get("confident") is False,
                top_faq=hits[0] if hits else None,
            )
        )
    if not questions:
        return []
    vectors = _embed([q.text for q in questions])
    gaps: list[Gap] = []
    heads: list[np.ndarray] = []
    for question, vector in zip(questions, vectors, strict=True):
        # Greedy: join the first group whose first (most recent) question is close enough.
        for gap, head in zip(gaps, heads, strict=True):
            if float(np.dot(head, vector)) >= similarity:
                gap.questions.append(question)
                break
        else:
            gaps.append(Gap(questions=[question]))
            heads.append(vector)
    return sorted(gaps, key=lambda g: -g.count)


def _embed(texts: list[str]) -> np.ndarray:
    """Unit vectors of the texts with the search embedder; without one, identical texts still group together."""
    try:
        from apps.faq.embedders import embedder_get

        return embedder_get().embed_for_similarity(texts)
    except Exception:
        logger.exception("knowledge gaps: embedding failed; grouping identical questions only")
        keys = {t: i for i, t in enumerate(dict.fromkeys(" ".join(t.split()) for t in texts))}
        out = np.zeros((len(texts), len(keys)), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, keys[" ".join(text.split())]] = 1.0
        return out
