"""The FAQ knowledge base: entries, their kept versions, and the knowledge-base revision counter.

Every change to the knowledge base (an import, an admin edit) creates one KbRevision; each changed entry gets
a FaqEntryVersion snapshot at that revision, so any past state can be read back and every bot reply can say
which revision it was answered from.
"""

from django.db import models


class KbRevision(models.Model):
    """One change set of the knowledge base. `number` is what replies record."""

    number = models.PositiveIntegerField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=150, blank=True)
    note = models.CharField(max_length=300, blank=True)
    entries_changed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"KB r{self.number}"


class FaqEntry(models.Model):
    external_id = models.CharField(max_length=64, unique=True, help_text="The id used in import files.")
    question = models.TextField()
    alt_questions = models.JSONField(default=list, blank=True, help_text="Other ways customers ask this.")
    answer = models.TextField()
    category = models.CharField(max_length=100, blank=True, db_index=True)
    tags = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    revision = models.PositiveIntegerField(help_text="KB revision of the last change to this entry.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]
        verbose_name = "FAQ entry"
        verbose_name_plural = "FAQ entries"

    def __str__(self) -> str:
        return f"{self.external_id}: {self.question[:40]}"


class FaqEntryVersion(models.Model):
    """The state of an entry as of one KB revision; kept forever."""

    entry = models.ForeignKey(FaqEntry, on_delete=models.CASCADE, related_name="versions")
    revision = models.PositiveIntegerField(db_index=True)
    question = models.TextField()
    alt_questions = models.JSONField(default=list)
    answer = models.TextField()
    category = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=list)
    is_active = models.BooleanField()
    actor = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["entry_id", "-revision"]
        constraints = [models.UniqueConstraint(fields=["entry", "revision"], name="faq_version_once_per_revision")]

    def __str__(self) -> str:
        return f"{self.entry_id} at KB r{self.revision}"
