"""`{{ value|ja:"example_status" }}`: the Japanese label of a status, kind or action (apps.training.texts_ja)."""

from django import template

from apps.training.texts_ja import LABELS

register = template.Library()


@register.filter
def ja(value: object, table: str) -> str:
    return LABELS.get(table, {}).get(str(value), str(value))
