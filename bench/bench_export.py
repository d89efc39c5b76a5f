"""Exporting 100,000 approved training examples with a 20% replay mix, in the format KARAKURI LM is tuned with.

    .venv/bin/python bench/bench_export.py [--examples 100000] [--format karakuri-sft] [--replay-ratio 0.2]

Builds a throwaway SQLite database in a temporary directory holding N approved examples (synthetic Japanese
support conversations of one to three turns, each with three demo FAQ entries as context, a tenth carrying
personal data to mask) and a replay corpus of general text. Then a fresh process runs the export exactly as
the `export` queue's worker does (`batch_build`: selection, masking, duplicate dropping, rendering with the
bot's prompt renderer, split, replay sampling and mixing, sha256, atomic publish) and reports its wall time and
peak memory (ru_maxrss of that process, so the data generation is not counted). Targets (issue 6, 2 cores):
≤ 60 s and ≤ 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_WORDS = (
    "ご注文 商品 配送 お届け 返品 交換 送料 クーポン ポイント 会員 登録 パスワード ログイン メール アドレス "
    "お支払い クレジットカード コンビニ 銀行振込 領収書 請求書 在庫 予約 定期便 ギフト 包装 のし 冷凍 冷蔵 "
    "賞味期限 産地 有機野菜 果物 お米 牛乳 卵 パン お菓子 飲料 調味料 店舗 受け取り 再配達 不在票 日時指定 "
    "キャンセル 変更 住所 宛先 梱包 破損 不良品 返金 保証 説明書 サイズ 色 数量 まとめ買い 割引 セール"
).split()
_ASKS = ["について教えてください", "はどうすればいいですか", "がまだ届きません", "を変更したいです", "ができません"]
_POLITE = [
    "お問い合わせいただきありがとうございます。",
    "ご不便をおかけしており申し訳ございません。",
    "ご確認いただきありがとうございます。",
]
# Names as customers and operators write them: with 様, and without (found by their context through Sudachi).
_PII = [
    "090-{:04d}-{:04d}",
    "〒150-{:04d}",
    "yamada{}{}@example.com",
    "山田{}{}様",
    "。田中です",
    "。佐藤と申します",
    "東京都新宿区西新宿{}-{}-1",
]


def _phrase(rng: random.Random, n: int) -> str:
    return "と".join(rng.sample(_WORDS, n))


def _pii(rng: random.Random) -> str:
    return rng.choice(_PII).format(rng.randrange(10000), rng.randrange(10000))


def build(work: Path, n: int, corpus_lines: int) -> tuple[Path, float]:
    """The database with `n` approved examples, and the replay corpus. Returns (corpus, seconds)."""
    started = time.perf_counter()
    from django.contrib.auth.models import User
    from django.db import transaction

    from apps.chat.models import Conversation, Message
    from apps.llm.attributes import BUILTIN_DEFAULTS
    from apps.training.models import Correction, TrainingExample

    faq = [json.loads(line) for line in (ROOT / "apps/faq/demo/faq.jsonl").read_text(encoding="utf-8").splitlines()]
    operator = User.objects.create_user("bench-operator")
    reviewer = User.objects.create_user("bench-reviewer")
    rng = random.Random(6)
    chunk = 5000
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        with transaction.atomic():
            conversations = Conversation.objects.bulk_create([Conversation(channel="web") for _ in range(size)])
            customers = Message.objects.bulk_create(
                [
                    Message(conversation=c, seq=1, role="customer", text=_phrase(rng, 3) + rng.choice(_ASKS))
                    for c in conversations
                ]
            )
            corrections = []
            for conversation, customer in zip(conversations, customers, strict=True):
                turns = []
                for _ in range(rng.choice([0, 0, 1])):
                    turns += [
                        {"role": "user", "content": _phrase(rng, 2) + rng.choice(_ASKS)},
                        {"role": "assistant", "content": rng.choice(_POLITE) + _phrase(rng, 4) + "をご確認ください。"},
                    ]
                question = customer.text + ("。連絡先は" + _pii(rng) + "です。" if rng.random() < 0.1 else "")
                turns.append({"role": "user", "content": question})
                entries = rng.sample(faq, 3)
                chosen = (
                    rng.choice(_POLITE)
                    + _phrase(rng, 6)
                    + "についてご案内いたします。"
                    + _phrase(rng, 5)
                    + "をご確認ください。"
                )
                corrections.append(
                    Correction(
                        kind="correction",
                        conversation=conversation,
                        customer_message=customer,
                        rejected_text=_phrase(rng, 5) + "です。",
                        chosen_text=chosen,
                        no_faq_covers=True,
                        attributes=dict(BUILTIN_DEFAULTS),
                        context={
                            "turns": turns,
                            "faq": [
                                {
                                    "faq_id": e["id"],
                                    "question": e["question"],
                                    "answer": e["answer"],
                                    "score": 0.9 - i / 10,
                                }
                                for i, e in enumerate(entries)
                            ],
                            "confident": True,
                            "is_first_reply": len(turns) == 1,
                        },
                        kb_revision=1 + start // 50000,
                        backend="neuron",
                        model_id="karakuri-ai/karakuri-lm-70b-chat-v0.1",
                        operator=operator,
                    )
                )
            corrections = Correction.objects.bulk_create(corrections)
            TrainingExample.objects.bulk_create(
                [
                    TrainingExample(
                        correction=c,
                        conversation_id=c.conversation_id,
                        chosen_text=c.chosen_text,
                        rejected_text=c.rejected_text,
                        attributes=c.attributes,
                        status="approved",
                        reviewed_by=reviewer,
                    )
                    for c in corrections
                ]
            )
    corpus = work / "replay.jsonl"
    with open(corpus, "w", encoding="utf-8") as fh:
        for i in range(corpus_lines):
            text = f"{i}番目の一般的な文章です。" + "、".join(rng.sample(_WORDS, 12)) + "などについて説明します。"
            fh.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return corpus, time.perf_counter() - started


def export_only(args: argparse.Namespace) -> None:
    """In a fresh process: queue the batch and time its task, which Celery runs right here without a broker (as
    on the `export` worker); print one JSON line."""
    import django

    django.setup()
    from apps.training import services

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    batch = services.batch_export(
        format=args.format,
        replay_corpus=args.corpus,
        replay_ratio=args.replay_ratio,
        seed=1234,
        out_dir=args.out,
    )
    seconds = time.perf_counter() - started
    batch.refresh_from_db()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "baseline_mb": baseline, "status": batch.status,
                      "error": batch.error, "path": batch.path, "manifest": batch.manifest}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--format", default="karakuri-sft")
    parser.add_argument("--replay-ratio", type=float, default=0.2)
    parser.add_argument("--export-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_only:
        export_only(args)
        return

    from bench._common import django_setup

    work = django_setup()
    # Celery runs the task in the calling process here: the worker's own work is what is timed.
    os.environ.pop("REDIS_URL", None)
    print(f"building {args.examples:,} approved examples in {work} ...", flush=True)
    corpus, built = build(work, args.examples, corpus_lines=200_000)
    print(f"built in {built:.0f} s; exporting ({args.format}, replay ratio {args.replay_ratio}) ...", flush=True)
    child = subprocess.run(
        [sys.executable, __file__, "--export-only", "--format", args.format, "--replay-ratio", str(args.replay_ratio),
         "--corpus", str(corpus), "--out", str(work / "exports")],
        env={**os.environ, "KARAKURI_DATA_DIR": str(work)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if child.returncode != 0:
        sys.exit(child.stderr)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    if result["status"] != "ready":
        sys.exit(f"export {result['status']}: {result['error']}")
    counts = result["manifest"]["counts"]
    size = sum(f["bytes"] for f in result["manifest"]["files"].values())
    print(
        f"{counts['selected']:,} examples selected → {counts['train_examples']:,} train + "
        f"{counts['validation_examples']:,} validation, {counts['replay_lines']:,} replay lines, "
        f"{counts['dropped_duplicates']['total']:,} duplicates dropped, {counts['masked_spans']['total']:,} spans masked"
    )
    print(f"files: {size / 1e6:.0f} MB in {result['path']}")
    print(f"export: {result['seconds']:.1f} s ({counts['selected'] / result['seconds']:,.0f} examples/s)")
    print(
        f"peak memory of the export process: {result['peak_mb']:.0f} MB (after start-up {result['baseline_mb']:.0f} MB)"
    )
    print("targets: ≤ 60 s, ≤ 500 MB")


if __name__ == "__main__":
    main()
