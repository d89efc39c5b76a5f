"""Django admin for the FAQ knowledge base.

Every save goes through `faq_entries_upsert`, like an import: the edit becomes a KB revision, the old text is
kept as a version, and the search index follows after the commit. Entries are never deleted (replies point
at them and their versions); "delete" is deactivation through the same service.
"""

from __future__ import annotations

from dataclasses import replace

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.faq.importers import faq_row_from_entry, faq_row_validate
from apps.faq.models import FaqEntry, FaqEntryVersion, KbRevision
from apps.faq.services import FaqRow, faq_entries_upsert

# The row keys used by import files, and the form fields that edit them.
_FORM_FIELD_FOR = {"id": "external_id"}


class LinesField(forms.Field):
    """A list of strings edited one per line in a textarea; blank lines are dropped."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 80})

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(value)
        return value

    def to_python(self, value) -> list[str]:
        lines = value.splitlines() if isinstance(value, str) else list(value or [])
        return [line.strip() for line in lines if line.strip()]


class FaqEntryForm(forms.ModelForm):
    """Validates with the same rules as the import files and hands `save_model` a ready FaqRow."""

    alt_questions = LinesField(required=False, label="Alternative questions", help_text="One phrasing per line.")
    tags = LinesField(required=False, help_text="One tag per line.")

    class Meta:
        model = FaqEntry
        fields = ["external_id", "question", "alt_questions", "answer", "category", "tags", "is_active"]
        # Questions are one line (a line break is rejected like in the files); answers keep the textarea.
        widgets = {"question": forms.TextInput(attrs={"size": 80})}

    faq_row: FaqRow | None = None

    def clean(self):
        cleaned = super().clean()
        data = {
            "id": cleaned.get("external_id", self.instance.external_id),
            "question": cleaned.get("question", ""),
            "answer": cleaned.get("answer", ""),
            "category": cleaned.get("category", ""),
            "tags": cleaned.get("tags", []),
            "alt_questions": cleaned.get("alt_questions", []),
            "is_active": cleaned.get("is_active", True),
        }
        row, problems = faq_row_validate(data)
        for problem in problems:
            name = _FORM_FIELD_FOR.get(problem.field, problem.field)
            if name not in self.fields:
                self.add_error(None, problem.message)
            elif name not in self.errors:
                self.add_error(name, problem.message)
        if row is not None and not self.errors:
            self.faq_row = row
            # The instance gets the text as the service stores it (stripped; the browser's "\r\n" → "\n").
            cleaned.update(row.content())
        return cleaned


class FaqEntryVersionInline(admin.TabularInline):
    model = FaqEntryVersion
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "revision",
        "question",
        "answer",
        "alt_questions",
        "category",
        "tags",
        "is_active",
        "actor",
        "created_at",
    )
    verbose_name = "kept version"
    verbose_name_plural = "kept versions (newest first)"

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(FaqEntry)
class FaqEntryAdmin(admin.ModelAdmin):
    form = FaqEntryForm
    list_display = ["external_id", "question_short", "category", "is_active", "revision", "updated_at"]
    list_display_links = ["external_id", "question_short"]
    list_filter = ["category", "is_active"]
    # alt_questions is JSON; on SQLite Japanese is stored \u-escaped there, so a text search would miss it.
    search_fields = ["external_id", "question", "answer", "category"]
    actions = ["deactivate_selected", "activate_selected"]

    @admin.display(description="question", ordering="question")
    def question_short(self, obj: FaqEntry) -> str:
        return obj.question if len(obj.question) <= 60 else obj.question[:59] + "…"

    def get_fields(self, request: HttpRequest, obj: FaqEntry | None = None):
        fields = list(FaqEntryForm.Meta.fields)
        return fields + ["revision", "created_at", "updated_at"] if obj else fields

    def get_readonly_fields(self, request: HttpRequest, obj: FaqEntry | None = None) -> list[str]:
        # The id is what files and replies refer to; changing it would make a different entry.
        return ["external_id", "revision", "created_at", "updated_at"] if obj else []

    def get_inlines(self, request: HttpRequest, obj: FaqEntry | None):
        return [FaqEntryVersionInline] if obj else []

    def has_delete_permission(self, request: HttpRequest, obj: FaqEntry | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: FaqEntry, form: FaqEntryForm, change: bool) -> None:
        row = form.faq_row
        assert row is not None, "FaqEntryForm.clean() builds the row for every valid form"
        report = faq_entries_upsert(
            rows=[row], actor=request.user.get_username(), note=f"admin {'edit' if change else 'add'} {row.external_id}"
        )
        # The admin carries on with `obj` (log entry, redirect), so point it at the row the service wrote.
        obj.pk = FaqEntry.objects.only("pk").get(external_id=row.external_id).pk
        obj.refresh_from_db()
        obj._state.adding = False
        if report.revision is None:
            self.message_user(request, "Nothing changed, so the KB revision stays the same.", messages.INFO)

    def save_formset(self, request, form, formset, change) -> None:
        # The only inline is the read-only list of versions, which faq_entries_upsert alone writes. Nothing is
        # saved; the admin's change message reads these lists.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    @admin.action(description="Deactivate selected FAQ entries (kept with their history)", permissions=["change"])
    def deactivate_selected(self, request: HttpRequest, queryset: QuerySet[FaqEntry]) -> None:
        self._set_active(request, queryset, active=False)

    @admin.action(description="Activate selected FAQ entries", permissions=["change"])
    def activate_selected(self, request: HttpRequest, queryset: QuerySet[FaqEntry]) -> None:
        self._set_active(request, queryset, active=True)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[FaqEntry], *, active: bool) -> None:
        rows = [replace(faq_row_from_entry(entry), is_active=active) for entry in queryset]
        verb = "activated" if active else "deactivated"
        report = faq_entries_upsert(
            rows=rows, actor=request.user.get_username(), note=f"admin {verb} {len(rows)} entries"
        )
        changed = len(report.updated)
        if report.revision is None:
            self.message_user(request, f"Nothing to do: the selected entries were already {verb}.", messages.INFO)
        else:
            self.message_user(request, f"{changed} entries {verb} in KB revision {report.revision}.", messages.SUCCESS)


@admin.register(KbRevision)
class KbRevisionAdmin(admin.ModelAdmin):
    """Read-only: revisions are created by faq_entries_upsert and referenced by bot replies."""

    list_display = ["number", "created_at", "actor", "note", "entries_changed"]
    search_fields = ["actor", "note"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: KbRevision | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: KbRevision | None = None) -> bool:
        return False
