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


class TrainingExample(models.Model):
    """One correction as reviewable training data.

    Created with its correction (in `correction_create`'s transaction), it starts `pending`. A supervisor
    approves, rejects or edits it; only approved examples are exported. `chosen_text` and `attributes` start as
    the operator's and may be edited in review; the correction itself is never changed. `revision` counts edits
    and decisions, so a decision made on a stale screen is refused rather than applied to text nobody saw.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    correction = models.OneToOneField(Correction, on_delete=models.CASCADE, related_name="example")
    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    chosen_text = models.TextField()
    rejected_text = models.TextField(blank=True)
    attributes = models.JSONField()
    revision = models.PositiveIntegerField(default=1)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # The first batch that took this example in a normal export; set once, so no example goes into two batches
    # unless a supervisor asks for a re-export (which records its items in BatchItem but leaves this alone).
    export_batch = models.ForeignKey(
        "training.ExportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "export_batch"], name="example_status_batch")]
        permissions = [("review_trainingexample", "Can review training examples")]

    def __str__(self) -> str:
        return f"example #{self.pk} ({self.status})"


class ReviewDecision(models.Model):
    """Who did what to an example, kept forever (the example holds only the latest decision)."""

    class Action(models.TextChoices):
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"
        EDIT = "edit", "Edited"

    example = models.ForeignKey(TrainingExample, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    # For an edit: the values before it, so the history shows what changed.
    before = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.example_id} by {self.actor_id}"


class ApiToken(models.Model):
    """A bearer token for the fine-tuning pipeline's batch queue API. Only its SHA-256 is stored."""

    name = models.CharField(max_length=100)
    # The first characters of the token, shown in the console so a token can be recognised without its secret.
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("manage_apitoken", "Can create and revoke batch queue API tokens")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ExportBatch(models.Model):
    """One export: its parameters, progress, and where it is in the fine-tuning pipeline's queue.

    queued → running → ready → claimed → consumed; a claim not acknowledged in time counts as ready again.
    `failed` (the examples go back to the export queue) and `empty` (nothing to export) are final.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Exporting"
        READY = "ready", "Ready"
        CLAIMED = "claimed", "Claimed"
        CONSUMED = "consumed", "Consumed"
        FAILED = "failed", "Failed"
        EMPTY = "empty", "Nothing to export"

    class Format(models.TextChoices):
        KARAKURI_SFT = "karakuri-sft", "karakuri-sft (KARAKURI chat format text)"
        STEERLM = "steerlm", "steerlm (NeMo-Aligner SteerLM)"
        MESSAGES = "messages", "messages (role/content)"
        DPO = "dpo", "dpo (prompt/chosen/rejected)"

    format = models.CharField(max_length=16, choices=Format.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # Selection: approved examples created in [since, until); a re-export also takes already exported ones.
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    reexport = models.BooleanField(default=False)
    # Parameters fixed when the batch is requested, so a retried task writes the same batch.
    replay_corpus = models.CharField(max_length=1000, blank=True)
    replay_ratio = models.FloatField(default=0.0)
    seed = models.BigIntegerField()
    validation_ratio = models.FloatField()
    options = models.JSONField(default=dict, blank=True, help_text="PII kinds and allow-list, near-dup distance.")
    out_dir = models.CharField(max_length=1000, help_text="The folder the batch folder is written into.")
    path = models.CharField(max_length=1000, blank=True, help_text="The finished batch folder.")
    manifest = models.JSONField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Export progress, written by the task every few thousand examples.
    stage = models.CharField(max_length=32, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    # A running task holds the batch until this time; another delivery of the task waits it out.
    lease_until = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The queue: who holds the batch and until when.
    claim_id = models.UUIDField(null=True, blank=True)
    claimed_by = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("export_batches", "Can export training batches")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def name(self) -> str:
        return f"batch-{self.pk:06d}-{self.format}"


class BatchItem(models.Model):
    """An example taken into a batch. A retried export writes exactly these."""

    batch = models.ForeignKey(ExportBatch, on_delete=models.CASCADE, related_name="items")
    example = models.ForeignKey(TrainingExample, on_delete=models.CASCADE, related_name="batch_items")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "example"], name="batch_item_once")]

    def __str__(self) -> str:
        return f"{self.example_id} in {self.batch_id}"
