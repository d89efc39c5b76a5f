"""Console data: canned responses, copilot drafts, the audit log, and the console's permissions."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models


class ConsolePermission(models.Model):
    """No table: only a place for the console's permissions, which the roles (apps.console.roles) grant."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("use_console", "Can open the operator console"),
            ("handle_conversations", "Can take over, reply to, hand back and close conversations"),
            ("correct_replies", "Can correct bot replies"),
            ("add_faq_phrasing", "Can add a customer's question as a phrasing of an FAQ entry"),
            ("edit_faq", "Can create and edit FAQ entries from the console"),
            ("supervise_conversations", "Can close conversations other operators hold"),
            ("view_audit_log", "Can read the audit log"),
        ]

    def __str__(self) -> str:
        return "console permissions"


class CannedResponse(models.Model):
    """定型文: a reply an operator inserts by typing /shortcut in the composer."""

    shortcut = models.CharField(
        max_length=32,
        unique=True,
        validators=[RegexValidator(r"^[a-z0-9_-]+$", "半角英小文字・数字・-・_ で入力してください。")],
    )
    title = models.CharField(max_length=100)
    text = models.TextField(max_length=2000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut} {self.title}"


class CopilotDraft(models.Model):
    """The bot's suggested reply to a customer message while a person holds the conversation. Never shown to
    the customer; the operator edits and sends it, and (draft, sent text) becomes a training correction."""

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="+")
    customer_message = models.OneToOneField("chat.Message", on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    # The same shape as a bot reply's provenance (FAQ hits, KB revision, backend, model, checks, timings).
    provenance = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"draft for message {self.customer_message_id}"


class AuditEntry(models.Model):
    """Who did what in the console, when. Written in the same transaction as the action itself."""

    class Action(models.TextChoices):
        TAKE_OVER = "take_over", "対応開始"
        REPLY = "reply", "返信"
        HAND_BACK = "hand_back", "AIに戻す"
        CLOSE = "close", "会話を終了"
        CORRECTION = "correction", "回答を修正"
        COPILOT_EDIT = "copilot_edit", "下書きを編集して送信"
        FAQ_CREATE = "faq_create", "FAQを作成"
        FAQ_UPDATE = "faq_update", "FAQを編集"
        FAQ_PHRASING = "faq_phrasing", "FAQに言い換えを追加"
        CANNED_SAVE = "canned_save", "定型文を保存"
        CANNED_DELETE = "canned_delete", "定型文を削除"

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Kept as text too, so the log still names a deleted user.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action}"
