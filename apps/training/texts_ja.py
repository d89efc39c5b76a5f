"""Japanese text of the training screens and of the masked spans in exported data, in one place."""

# What a masked span becomes in exported text. Full-width brackets: they can never read as a format marker.
MASK_PLACEHOLDERS = {
    "email": "［メールアドレス］",
    "card": "［カード番号］",
    "my_number": "［個人番号］",
    "phone": "［電話番号］",
    "postal": "［郵便番号］",
    "address": "［住所］",
    "name": "［氏名］",
}

REVIEW_CONFLICT = "この事例はほかの方が先に更新しました。最新の内容を表示しています。"
REVIEW_DONE = {
    "approve": "承認しました。",
    "reject": "却下しました。",
    "edit": "保存しました。承認済みだった場合はレビュー待ちに戻ります。",
}
EXPORT_QUEUED = "エクスポートを開始しました（バッチ {name}）。"
EXPORT_NOTHING = "エクスポートする承認済みの事例がありません。"
EXPORT_RETRIED = "バッチ {name} を再実行します。"
TOKEN_CREATED = "トークン「{name}」を作成しました。この画面を離れると二度と表示されません。"
TOKEN_REVOKED = "トークン「{name}」を無効にしました。"

# What the screens call statuses, kinds and actions (the models keep English labels for the admin and logs).
LABELS = {
    "example_status": {"pending": "レビュー待ち", "approved": "承認済み", "rejected": "却下"},
    "batch_status": {
        "queued": "待機中",
        "running": "エクスポート中",
        "ready": "取得待ち",
        "claimed": "取得済み",
        "consumed": "消費済み",
        "failed": "失敗",
        "empty": "対象なし",
    },
    "correction_kind": {"correction": "AI回答の修正", "copilot_edit": "下書きを編集して送信"},
    "decision": {"approve": "承認", "reject": "却下", "edit": "編集"},
    "stage": {
        "": "待機中",
        "selected": "対象を選択済み",
        "examples": "事例を書き出し中",
        "replay": "リプレイを混合中",
        "publishing": "公開中",
        "done": "完了",
        "failed": "失敗",
    },
}
