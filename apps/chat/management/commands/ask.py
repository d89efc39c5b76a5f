"""`python manage.py ask "質問" [--json] [--show-prompt]`: one question through the customer pipeline."""

import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.chat import services
from apps.chat.errors import ChatError
from apps.chat.models import Message
from karakuri_cs.commands import database_ready_or_fail

REPLY_TIMEOUT_SECONDS = 120


def reply_wait(message: Message, *, timeout: float = REPLY_TIMEOUT_SECONDS) -> Message | None:
    """The bot's reply to `message`: already there in-process, or written by a Celery worker soon."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = Message.objects.filter(in_reply_to=message, role=Message.Role.BOT).first()
        if reply is not None:
            return reply
        time.sleep(0.1)
    return None


class Command(BaseCommand):
    help = "Answer one question through the same pipeline as the customer chat."

    def add_arguments(self, parser):
        parser.add_argument("question")
        parser.add_argument("--json", action="store_true", help="Print the reply, cited FAQ and scores as JSON.")
        parser.add_argument(
            "--show-prompt", action="store_true", help="Print the exact prompt the model would be sent, and stop."
        )

    def handle(self, *args, question: str, json: bool, show_prompt: bool, **options):
        database_ready_or_fail()
        if show_prompt:
            return self._show_prompt(question)
        conversation = services.conversation_create(channel="cli")
        try:
            message, _ = services.customer_message_receive(conversation_id=conversation.id, text=question)
        except ChatError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        reply = reply_wait(message)
        if reply is None:
            raise CommandError(f"No reply within {REPLY_TIMEOUT_SECONDS} s (is a generation worker running?)")
        if json:
            self.stdout.write(_json_dumps(reply_summary(reply)))
        else:
            self.stdout.write(reply.text)

    def _show_prompt(self, question: str) -> None:
        from apps.chat.pipeline import reply_request_preview
        from apps.llm.prompt import render_prompt_text

        try:
            request = reply_request_preview(question=services.customer_text_clean(question))
        except ChatError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(render_prompt_text(request))


def reply_summary(reply: Message) -> dict:
    provenance = reply.provenance
    return {
        "reply": reply.text,
        "faq": [{"id": f["id"], "question": f["question"], "score": f["score"]} for f in provenance.get("faq", [])],
        "cited_faq_ids": provenance.get("cited_faq_ids", []),
        "confident": provenance.get("confident"),
        "offered_person": not provenance.get("cited_faq_ids") or provenance.get("fallback", False),
        "kb_revision": provenance.get("kb_revision"),
        "backend": provenance.get("backend"),
        "model_id": provenance.get("model_id"),
        "checks": provenance.get("checks"),
        "timings_ms": provenance.get("timings_ms"),
        "reply_execution": settings.REPLY_EXECUTION,
    }


def _json_dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)
