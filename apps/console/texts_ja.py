"""Japanese text of the operator console that code (not a template) produces, in one place."""

# Errors of console actions (WebSocket `error` events and form messages); keys are the stable codes.
ERRORS = {
    "invalid_json": "送信内容を読み取れませんでした。",
    "unknown_event": "対応していない操作です。",
    "invalid_field": "送信内容に誤りがあります。",
    "not_found": "会話が見つかりませんでした。",
    "permission_denied": "この操作を行う権限がありません。",
    "held_by_other": "この会話は他の担当者が対応中です。",
    "not_holder": "この会話を対応中ではありません。先に「対応する」を押してください。",
    "conversation_closed": "この会話は終了しています。",
    "no_customer_message": "お客様のメッセージがまだありません。",
    "empty_message": "メッセージを入力してください。",
    "message_too_long": "メッセージが長すぎます。",
    "invalid_characters": "使用できない文字が含まれています。",
    "correction_invalid": "下書きの記録に失敗したため送信しませんでした。",
}

# Correction form: one message per field that correction_create or the form can refuse.
CORRECTION_FIELD_ERRORS = {
    "chosen_text": "修正後の回答を入力してください（5,000文字以内）。",
    "faq_external_id": "回答の根拠となるFAQを選ぶか、「該当するFAQなし」を選んでください（両方は選べません）。",
    "attributes": "9つの評価項目すべてに0〜4の整数で評価を付けてください。",
    "reason_tags": "理由タグは1〜50文字、20個までです。",
    "customer_message": "この回答に対応するお客様のメッセージが見つかりません。",
    "reply_message": "修正対象の回答が見つかりません。",
    "kind": "修正の種類が正しくありません。",
}

# Reason tags offered as checkboxes on the correction form (free tags may be added too).
REASON_TAGS = [
    "誤った情報",
    "FAQの選択ミス",
    "情報不足",
    "冗長",
    "敬語・言葉遣い",
    "質問の読み違え",
    "不要な引き継ぎ",
    "引き継ぐべきだった",
]

ATTRIBUTE_LABELS = {
    "helpfulness": "有用性",
    "correctness": "正確性",
    "coherence": "一貫性",
    "complexity": "複雑さ",
    "verbosity": "冗長さ",
    "quality": "品質",
    "toxicity": "有害性",
    "humor": "ユーモア",
    "creativity": "創造性",
}
