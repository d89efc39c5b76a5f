"""Conversations and their messages.

Every message has a per-conversation sequence number. Clients remember the last number they saw, so a
reconnecting client asks for everything after it and misses nothing; status changes are recorded as `system`
messages for the same reason.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Conversation(models.Model):
    class Status(models.TextChoices):
        BOT = "bot", "Bot answering"
        WAITING_FOR_OPERATOR = "waiting_for_operator", "Waiting for a person"
        OPERATOR = "operator", "Person answering"
        CLOSED = "closed", "Closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.BOT, db_index=True)
    channel = models.CharField(max_length=16, default="web", help_text="web, http or cli")
    last_seq = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    waiting_since = models.DateTimeField(null=True, blank=True)
    # The person holding the conversation while status is `operator` (apps.chat.operator_services); at most one.
    assigned_operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def bot_answers(self) -> bool:
        return self.status == self.Status.BOT


class Message(models.Model):
    class Role(models.TextChoices):
        CUSTOMER = "customer"
        BOT = "bot"
        OPERATOR = "operator"
        SYSTEM = "system"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField()
    # Chosen by the client; a resent message with the same id is recognised and not stored twice.
    client_msg_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - NULL means "none", and stays out of the unique constraint
    in_reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # For bot replies: FAQ ids and scores, KB revision, backend and model id, timings, check results.
    provenance = models.JSONField(default=dict, blank=True)
    # Customer's thumbs on a bot reply: 1, -1 or null.
    feedback = models.SmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            models.UniqueConstraint(
                fields=["conversation", "client_msg_id"],
                condition=Q(client_msg_id__isnull=False),
                name="message_client_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(feedback__in=[1, -1]) | Q(feedback__isnull=True), name="feedback_values"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq} {self.role}"
