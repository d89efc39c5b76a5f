"""Forms of the operator console. Japanese messages; the services check everything again."""

from __future__ import annotations

import re

from django import forms

from apps.console.models import CannedResponse
from apps.console.texts_ja import ATTRIBUTE_LABELS, REASON_TAGS
from apps.faq.models import FaqEntry
from apps.llm.attributes import ATTRIBUTE_MAX, ATTRIBUTE_MIN, ATTRIBUTE_NAMES

NO_FAQ = "__none__"
_TAG_SPLIT = re.compile(r"[,、，\s]+")


def _required(message: str) -> dict[str, str]:
    return {"required": message, "invalid_choice": message}


class CorrectionForm(forms.Form):
    """What a bot reply should have said, the FAQ that answers it, nine attribute ratings and reason tags;
    optionally an FAQ entry created or edited from it in the same step."""

    chosen_text = forms.CharField(
        label="正しい回答",
        widget=forms.Textarea(attrs={"rows": 8, "autofocus": True}),
        max_length=5000,
        error_messages={
            "required": "修正後の回答を入力してください。",
            "max_length": "修正後の回答は5,000文字以内で入力してください。",
        },
    )
    faq_choice = forms.ChoiceField(
        label="回答の根拠となるFAQ",
        required=False,
        error_messages=_required("FAQを選ぶか「該当するFAQなし」を選んでください。"),
    )
    reason_tags = forms.MultipleChoiceField(
        label="理由タグ",
        choices=[(t, t) for t in REASON_TAGS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    extra_tags = forms.CharField(label="その他のタグ（読点区切り）", required=False, max_length=300)
    add_phrasing = forms.BooleanField(label="お客様の質問を、選んだFAQの言い換えとして登録する", required=False)
    faq_action = forms.ChoiceField(
        label="FAQの作成・編集",
        choices=[("", "しない"), ("create", "この回答から新しいFAQを作成"), ("update", "選んだFAQの回答を更新")],
        required=False,
        widget=forms.RadioSelect,
    )
    faq_new_id = forms.CharField(label="新しいFAQのID", required=False, max_length=64)
    faq_question = forms.CharField(label="FAQの質問", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    faq_category = forms.CharField(label="カテゴリ", required=False, max_length=100)
    faq_answer = forms.CharField(
        label="FAQの回答", required=False, widget=forms.Textarea(attrs={"rows": 5}), max_length=5000
    )

    def __init__(self, *args, faq_candidates: list[dict], can_edit_faq: bool, can_add_phrasing: bool, **kwargs):
        super().__init__(*args, **kwargs)
        candidate_ids = [c["id"] for c in faq_candidates]
        others = FaqEntry.objects.filter(is_active=True).exclude(external_id__in=candidate_ids)
        self.fields["faq_choice"].choices = [
            ("", "選択してください"),
            (NO_FAQ, "該当するFAQなし"),
            ("検索の候補", [(c["id"], f"{c['id']}: {c['question'][:50]}（{c['score']:.2f}）") for c in faq_candidates]),
            ("すべてのFAQ", [(e.external_id, f"{e.external_id}: {e.question[:50]}") for e in others]),
        ]
        for name in ATTRIBUTE_NAMES:
            self.fields[f"attr_{name}"] = forms.TypedChoiceField(
                label=ATTRIBUTE_LABELS[name],
                choices=[(i, str(i)) for i in range(ATTRIBUTE_MIN, ATTRIBUTE_MAX + 1)],
                coerce=int,
                widget=forms.RadioSelect,
                error_messages=_required(f"「{ATTRIBUTE_LABELS[name]}」を0〜4で評価してください。"),
            )
        if not can_edit_faq:
            for name in ("faq_action", "faq_new_id", "faq_question", "faq_category", "faq_answer"):
                del self.fields[name]
        if not can_add_phrasing:
            del self.fields["add_phrasing"]

    def attribute_fields(self):
        return [self[f"attr_{name}"] for name in ATTRIBUTE_NAMES]

    def clean(self):
        data = super().clean()
        action = data.get("faq_action") or ""
        choice = data.get("faq_choice") or ""
        if action != "create" and not choice:
            self.add_error("faq_choice", "FAQを選ぶか「該当するFAQなし」を選んでください。")
        if action == "update" and choice in ("", NO_FAQ):
            self.add_error("faq_choice", "更新するFAQを選んでください。")
        if action == "create":
            if not data.get("faq_new_id"):
                self.add_error("faq_new_id", "新しいFAQのIDを入力してください。")
            if not (data.get("faq_question") or "").strip():
                self.add_error("faq_question", "FAQの質問を入力してください。")
        return data

    @property
    def attributes(self) -> dict[str, int]:
        return {name: self.cleaned_data[f"attr_{name}"] for name in ATTRIBUTE_NAMES}

    @property
    def tags(self) -> list[str]:
        extra = [t for t in _TAG_SPLIT.split(self.cleaned_data.get("extra_tags") or "") if t]
        return list(dict.fromkeys([*self.cleaned_data.get("reason_tags", []), *extra]))


class CannedResponseForm(forms.ModelForm):
    class Meta:
        model = CannedResponse
        fields = ["shortcut", "title", "text"]
        labels = {"shortcut": "ショートカット（/の後に入力）", "title": "タイトル", "text": "本文"}
        widgets = {"text": forms.Textarea(attrs={"rows": 5})}
        error_messages = {
            "shortcut": {"unique": "このショートカットはすでに使われています。", "required": "入力してください。"},
            "title": {"required": "入力してください。"},
            "text": {"required": "入力してください。"},
        }
