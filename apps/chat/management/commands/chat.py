"""`python manage.py chat`: an interactive terminal chat through the customer pipeline."""

from django.core.management.base import BaseCommand

from apps.chat import services
from apps.chat.errors import ChatError
from apps.chat.management.commands.ask import REPLY_TIMEOUT_SECONDS, reply_wait
from karakuri_cs.commands import database_ready_or_fail


class Command(BaseCommand):
    help = "Chat with the bot in the terminal (empty line or Ctrl+D to quit; /person asks for a person)."

    def handle(self, *args, **options):
        database_ready_or_fail()
        conversation = services.conversation_create(channel="cli")
        self.stdout.write("質問を入力してください（空行で終了、/person で担当者を呼び出し）。")
        while True:
            try:
                line = input("あなた> ")
            except (EOFError, KeyboardInterrupt):
                break
            if not line.strip():
                break
            try:
                if line.strip() == "/person":
                    services.conversation_request_operator(conversation_id=conversation.id)
                    self.stdout.write("（担当者への引き継ぎを依頼しました。以降ボットは応答しません）")
                    continue
                message, _ = services.customer_message_receive(conversation_id=conversation.id, text=line)
            except ChatError as exc:
                self.stdout.write(self.style.ERROR(exc.message))
                continue
            conversation.refresh_from_db()
            if not conversation.bot_answers:
                continue
            reply = reply_wait(message)
            if reply is None:
                self.stdout.write(self.style.ERROR(f"{REPLY_TIMEOUT_SECONDS}秒以内に応答がありませんでした。"))
                continue
            cited = ", ".join(reply.provenance.get("cited_faq_ids", [])) or "なし"
            self.stdout.write(f"ボット> {reply.text}\n  [参照FAQ: {cited}]")
