"""Japanese text the chat shows customers (errors and status notices), in one place."""

HANDOFF_REQUESTED = "担当者に引き継ぎました。順番にご案内いたしますので、少々お待ちください。"
# System notices when an operator takes over, hands back to the bot or closes (apps.chat.operator_services).
OPERATOR_JOINED = "担当者が対応いたします。ここからは担当者がご案内いたします。"
OPERATOR_HANDED_BACK = "担当者の対応が終了しました。引き続きAIアシスタントがご案内いたします。"
CONVERSATION_CLOSED = "この会話は終了いたしました。ご利用いただき、ありがとうございました。"

ERRORS = {
    "invalid_json": "送信内容を読み取れませんでした。",
    "binary_not_supported": "この形式のデータは送信できません。",
    "unknown_event": "対応していない操作です。",
    "invalid_field": "送信内容に誤りがあります。",
    "hello_required": "接続の準備ができていません。ページを再読み込みしてください。",
    "invalid_token": "会話の情報を確認できませんでした。新しい会話を始めてください。",
    "empty_message": "メッセージを入力してください。",
    "message_too_long": "メッセージが長すぎます。{limit}文字以内で入力してください。",
    "invalid_characters": "使用できない文字が含まれています。",
    "rate_limited": "短時間に多くのメッセージが送信されました。しばらくしてから再度お試しください。",
    "not_found": "対象のメッセージが見つかりませんでした。",
    "conversation_closed": "この会話は終了しています。新しい会話を始めてください。",
}
