"""Operator corrections: the raw material of the next fine-tuning round.

A correction pairs what the bot said (or drafted, for a copilot draft) with what it should have said, and keeps
a snapshot of what the model saw (`context`), so an example rendered months later is the prompt of that day,
not of today's knowledge base.
"""

from django.conf import settings
from django.db import models


class Correction(models.Model):
    class Kind(models.TextChoices):
        CORRECTION = "correction", "Correction of a bot reply"
        COPILOT_EDIT = "copilot_edit", "Copilot draft edited and sent"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="corrections")
    # The customer message being answered.
    customer_message = models.ForeignKey("chat.Message", on_delete=models.CASCADE, related_name="+")
    # The bot reply corrected (kind=correction) or the operator's sent message (kind=copilot_edit).
    reply_message = models.ForeignKey(
        "chat.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rejected_text = models.TextField(help_text="What the bot said or drafted.")
    chosen_text = models.TextField(help_text="What it should have said.")
    faq_external_id = models.CharField(max_length=64, blank=True, help_text="The FAQ that answers the question.")
    no_faq_covers = models.BooleanField(default=False, help_text="No FAQ entry covers this question.")
    attributes = models.JSONField(help_text="The nine SteerLM attributes, each 0-4, rating the chosen text.")
    reason_tags = models.JSONField(default=list, blank=True)
    # What the model saw: {"turns": [{"role", "content"}...], "faq": [{"faq_id", "question", "answer", "score"}...],
    # "confident": bool, "is_first_reply": bool}; plus the model and knowledge base that produced the reply.
    context = models.JSONField()
    kb_revision = models.PositiveIntegerField(null=True, blank=True)
    backend = models.CharField(max_length=32, blank=True)
    model_id = models.CharField(max_length=200, blank=True)
    operator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="corrections")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~(models.Q(no_faq_covers=True) & ~models.Q(faq_external_id="")),
                name="correction_faq_or_none",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} on {self.conversation_id}"
