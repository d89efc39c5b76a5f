"""Forms of the training screens. They only parse; the services decide."""

from __future__ import annotations

from django import forms
from django.conf import settings

from apps.llm.attributes import ATTRIBUTE_MAX, ATTRIBUTE_MIN, ATTRIBUTE_NAMES
from apps.training.formats import FORMATS

_ATTRIBUTE_CHOICES = [(v, str(v)) for v in range(ATTRIBUTE_MIN, ATTRIBUTE_MAX + 1)]


class ExampleForm(forms.Form):
    """The example as a reviewer may change it: the chosen text and the nine ratings."""

    action = forms.ChoiceField(
        choices=[("approve", "approve"), ("reject", "reject"), ("edit", "edit"), ("skip", "skip")]
    )
    revision = forms.IntegerField(min_value=1)
    chosen_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), required=False, strip=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ATTRIBUTE_NAMES:
            self.fields[f"attr_{name}"] = forms.TypedChoiceField(
                choices=_ATTRIBUTE_CHOICES, coerce=int, required=False, label=name
            )

    def attributes(self) -> dict[str, int] | None:
        """The ratings sent, or None if the form carried none (the service then keeps the stored ones)."""
        values = {n: self.cleaned_data.get(f"attr_{n}") for n in ATTRIBUTE_NAMES}
        if all(v in (None, "") for v in values.values()):
            return None
        return {n: v for n, v in values.items() if v not in (None, "")}


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], initial="karakuri-sft")
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    replay_corpus = forms.ChoiceField(required=False)
    replay_ratio = forms.FloatField(min_value=0.0, max_value=0.9, initial=0.2, required=False)
    seed = forms.IntegerField(min_value=0, required=False)
    reexport = forms.BooleanField(required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The console offers only corpora in TRAINING_REPLAY_DIR: a free path would let a page read any file
        # the worker can. The command takes any path.
        self.fields["replay_corpus"].choices = [("", "なし")] + [(str(p), p.name) for p in replay_corpora()]


def replay_corpora() -> list:
    root = settings.TRAINING_REPLAY_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() or p.suffix in (".jsonl", ".txt"))


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)
