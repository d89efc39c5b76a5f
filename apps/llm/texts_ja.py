"""Japanese text the bot says or sends to the model, in one place.

A deployment overrides any of these by pointing LLM_TEXTS_MODULE at its own module that defines the same
names (see apps.llm.texts.get_texts); anything it leaves out keeps the value here.
"""

# The acknowledgement opens only the first reply of a conversation (JAPANESE_REPLIES.md: once is enough).
ACKNOWLEDGEMENT = "お問い合わせありがとうございます。"

# {question} is the FAQ's own question, {answer} its answer.
ANSWER_INTRO = "「{question}」についてご案内いたします。"
ANSWER_SOURCE = "（参考：よくあるご質問 {faq_id}「{question}」）"
CLOSING = "ほかにご不明な点がございましたら、お気軽にお尋ねください。"

NOT_FOUND = (
    "申し訳ございません。お問い合わせの内容について、こちらでは確かなご案内ができませんでした。"
    "担当者におつなぎいたしましょうか。画面の「担当者と話す」ボタンからお呼びいただけます。"
)

# Used when a generated reply fails its checks or the backend fails: the best FAQ answer, with a person offered.
FALLBACK_APOLOGY = "申し訳ございません。ただいま回答の作成に時間がかかっております。よくあるご質問からご案内いたします。"
OFFER_PERSON = "ご不明な点が解消しない場合は、担当者におつなぎいたしますので「担当者と話す」ボタンを押してください。"
