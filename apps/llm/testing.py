"""Tiny randomly initialised models for tests and benchmarks (never imported by the running app).

Real KARAKURI weights cannot be downloaded where the tests run, so `build_tiny_model` writes a model directory
with the same layout: a Llama (as the 70B Chat) or a Mixtral (as the 8x7B MoE Chat) built from a small config,
and a byte-level BPE tokenizer trained on the spot on the demo FAQ text. The Mixtral directory carries a chat
template in the Command R style with the attribute values as extra message keys, like the 8x7B models; the
Llama directory has none, so the built-in 70B renderer is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apps.llm.attributes import ATTRIBUTE_NAMES

DEMO_FAQ = Path(__file__).resolve().parent.parent / "faq" / "demo" / "faq.jsonl"

# Used when the demo FAQ file is not there: enough support-desk Japanese for the tokenizer to learn from.
SAMPLE_TEXT = """\
お問い合わせありがとうございます。パスワードの再設定についてご案内いたします。
ログイン画面の「パスワードをお忘れの方」から再設定いただけます。
ご登録のメールアドレスを入力し、「送信」を押してください。
届いたメールのリンクから新しいパスワードを設定してください。
ご注文のキャンセルは、発送前であればマイページの注文履歴から手続きいただけます。
送料は全国一律550円です。5,000円以上のご注文で送料無料となります。
返品は商品到着後8日以内にご連絡ください。お客様都合の返品は送料をご負担いただきます。
お支払い方法はクレジットカード、コンビニ払い、銀行振込からお選びいただけます。
ほかにご不明な点がございましたら、お気軽にお尋ねください。
申し訳ございません。お問い合わせの内容について、こちらでは確かなご案内ができませんでした。
担当者におつなぎいたしましょうか。順番にご案内いたしますので、少々お待ちください。
"""

MIXTRAL_CONTROL_TOKENS = (
    "<|START_OF_TURN_TOKEN|>",
    "<|END_OF_TURN_TOKEN|>",
    "<|SYSTEM_TOKEN|>",
    "<|USER_TOKEN|>",
    "<|CHATBOT_TOKEN|>",
)

_ATTRS = " ".join(f"{name}: {{{{ message['{name}'] }}}}" for name in ATTRIBUTE_NAMES)
MIXTRAL_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{{ message['content'] }}<|END_OF_TURN_TOKEN|>"
    "{% elif message['role'] == 'user' %}"
    "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{{ message['content'] }}<|END_OF_TURN_TOKEN|>"
    "{% if message['helpfulness'] is defined %}"
    "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>" + _ATTRS + "<|END_OF_TURN_TOKEN|>"
    "{% endif %}"
    "{% else %}"
    "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{{ message['content'] }}<|END_OF_TURN_TOKEN|>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{% endif %}"
)


def corpus_lines() -> list[str]:
    """Demo FAQ questions and answers (or the sample text), plus the prompt texts the model will be shown."""
    from apps.llm import texts_ja

    lines: list[str] = []
    if DEMO_FAQ.exists():
        for raw in DEMO_FAQ.read_text(encoding="utf-8").splitlines():
            if raw.strip():
                entry = json.loads(raw)
                lines.append(entry.get("question", ""))
                lines.extend(entry.get("alt_questions", []))
                lines.extend(entry.get("answer", "").splitlines())
    else:
        lines.extend(SAMPLE_TEXT.splitlines())
    lines.extend(str(v) for k, v in vars(texts_ja).items() if k.isupper() and isinstance(v, str))
    return [line for line in lines if line.strip()]


def build_tokenizer(*, arch: str = "llama", vocab_size: int = 1200):
    """A byte-level BPE tokenizer trained on the demo text: every byte sequence is encodable, so no <unk>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    if arch == "mixtral":
        specials += list(MIXTRAL_CONTROL_TOKENS)
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    backend.train_from_iterator(corpus_lines(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", model_max_length=2048
    )
    if arch == "mixtral":
        tokenizer.add_special_tokens({"additional_special_tokens": list(MIXTRAL_CONTROL_TOKENS)})
        tokenizer.chat_template = MIXTRAL_CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(out_dir: Path | str, *, arch: str = "llama", seed: int = 0) -> Path:
    """Write a tiny random `arch` ("llama" or "mixtral") model directory with its tokenizer; returns the path."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(arch=arch)
    eos_ids: list[int] = [tokenizer.eos_token_id]
    if arch == "mixtral":
        eos_ids.append(tokenizer.convert_tokens_to_ids("<|END_OF_TURN_TOKEN|>"))
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "tie_word_embeddings": False,
    }
    torch.manual_seed(seed)
    model: Any
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "mixtral":
        model = MixtralForCausalLM(MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2))
    else:
        raise ValueError(f"unknown arch {arch!r}")
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids if len(eos_ids) > 1 else eos_ids[0],
        pad_token_id=tokenizer.eos_token_id,
        do_sample=False,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
