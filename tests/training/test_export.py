"""Export batches, in this process: the round trip from a console correction to JSONL, masking, duplicates,
the split, replay mixing, the manifest, and what happens when an export dies half-way."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.training import export, services
from apps.training.models import BatchItem, ExportBatch, TrainingExample
from tests.training import factories

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


_WORDS = (
    "送料 返品 配送 注文 会員 登録 支払 請求 領収書 交換 在庫 予約 取消 変更 住所 宛先 梱包 保証 修理 点検 "
    "割引 クーポン ポイント 定期便 ギフト 包装 のし 電池 説明書 部品 色違い 寸法 素材 産地 賞味期限 冷凍 冷蔵 "
    "店舗 受取 再配達"
).split()


def distinct_text(n: int) -> str:
    """Answers that share little but their politeness, so duplicate detection keeps them all."""
    import random

    words = random.Random(n).sample(_WORDS, 8)
    return f"{n}番：" + "と".join(words) + "についてご案内いたします。"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def run_export(django_capture_on_commit_callbacks, export_dir):
    """Queue a batch through the service and run its task (eagerly, after the commit, as in production)."""

    def run(**kwargs) -> ExportBatch:
        kwargs.setdefault("format", "karakuri-sft")
        kwargs.setdefault("validation_ratio", 0.0)
        with django_capture_on_commit_callbacks(execute=True):
            batch = services.batch_export(**kwargs)
        batch.refresh_from_db()
        return batch

    return run


def test_round_trip_from_a_correction_to_the_jsonl(operator, reviewer, run_export):
    # The console stores a correction; a supervisor edits and approves it; the export writes it.
    correction = factories.correction(operator=operator, chosen="ご不便をおかけしております。")
    example = correction.example
    services.example_decide(
        example_id=example.id,
        actor=reviewer,
        action="approve",
        revision=example.revision,
        chosen_text="ご不便をおかけし申し訳ございません。通常2〜4日でお届けいたします。",
    )
    batch = run_export(format="karakuri-sft")
    assert batch.status == ExportBatch.Status.READY, batch.error
    folder = Path(batch.path)
    assert folder.name == batch.name and folder.parent == Path(batch.out_dir)
    (line,) = read_jsonl(folder / "train.jsonl")
    assert line["text"].endswith(" ご不便をおかけし申し訳ございません。通常2〜4日でお届けいたします。 </s>")
    assert "注文した商品がまだ届きません。いつ届きますか？ [ATTR] helpfulness: 4" in line["text"]
    assert "verbosity: 2" in line["text"], "the example's own attribute values"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest == batch.manifest
    assert manifest["counts"]["examples"] == 1
    assert manifest["kb_revisions"] == [1] and manifest["model_ids"] == ["karakuri-lm-test"]
    assert manifest["date_range"]["first"] == example.created_at.isoformat()
    for name, info in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"]
        assert (len(data), data.count(b"\n")) == (info["bytes"], info["lines"])
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "train.jsonl", "validation.jsonl"]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "no temporary folder left"


@pytest.mark.parametrize("fmt", ["steerlm", "messages", "dpo"])
def test_every_format_carries_the_chosen_text(operator, reviewer, run_export, fmt):
    factories.approved_example(operator=operator, reviewer=reviewer, chosen="正しい回答です。")
    batch = run_export(format=fmt)
    (line,) = read_jsonl(Path(batch.path) / "train.jsonl")
    chosen = {
        "steerlm": lambda: line["conversations"][-1]["value"],
        "messages": lambda: line["messages"][-1]["content"],
        "dpo": lambda: line["chosen"],
    }[fmt]()
    assert chosen == "正しい回答です。"


def test_only_approved_examples_are_exported_and_none_twice(operator, reviewer, run_export):
    first = factories.approved_example(operator=operator, reviewer=reviewer, chosen="一つ目の回答です。")
    factories.correction(operator=operator, chosen="レビュー待ちの回答です。")
    batch = run_export()
    assert [line["text"].count("一つ目") for line in read_jsonl(Path(batch.path) / "train.jsonl")] == [1]
    first.refresh_from_db()
    assert first.export_batch == batch
    with pytest.raises(services.NothingToExport):
        run_export()
    second = factories.approved_example(operator=operator, reviewer=reviewer, chosen="二つ目の回答です。")
    lines = read_jsonl(Path(run_export().path) / "train.jsonl")
    assert len(lines) == 1 and "二つ目" in lines[0]["text"]
    # A re-export, asked for explicitly, takes them all again.
    again = run_export(reexport=True)
    assert again.manifest["counts"]["examples"] == 2 and again.manifest["reexport"] is True
    second.refresh_from_db()
    assert second.export_batch_id != again.id, "a re-export does not change where an example was first exported"


def test_personal_data_is_masked_in_every_text(operator, reviewer, run_export):
    factories.approved_example(
        operator=operator,
        reviewer=reviewer,
        question="090-1234-5678 に電話ください。メールは taro@example.com です",
        rejected="山田太郎様、taro@example.com にお送りしました。",
        chosen="山田様、〒150-0001 のご住所あてに発送いたしました。",
    )
    batch = run_export(format="dpo")
    text = (Path(batch.path) / "train.jsonl").read_text(encoding="utf-8")
    for secret in ("090-1234-5678", "taro@example.com", "山田", "150-0001"):
        assert secret not in text
    assert "［電話番号］" in text and "［氏名］様" in text
    assert batch.manifest["counts"]["masked_spans"]["total"] >= 5


def test_duplicates_are_dropped_and_counted(operator, reviewer, run_export):
    for chosen in ["ご注文から通常2〜4日でお届けいたします。"] * 2 + ["ご注文から通常２〜４日でお届けいたします！"]:
        factories.approved_example(operator=operator, reviewer=reviewer, chosen=chosen)
    factories.approved_example(operator=operator, reviewer=reviewer, chosen="返品は到着後8日以内に承ります。")
    batch = run_export()
    counts = batch.manifest["counts"]
    assert counts["examples"] == 2
    assert counts["dropped_duplicates"] == {"exact": 1, "near": 1, "total": 2}


def test_the_split_keeps_each_conversation_on_one_side(operator, reviewer, run_export):
    for n in range(12):
        customer, _ = factories.conversation_with_reply(f"質問その{n}です。注文はいつ届きますか？")
        for m in range(2):
            factories.approved_example(
                operator=operator,
                reviewer=reviewer,
                customer_message=customer,
                chosen=distinct_text(n * 2 + m),
            )
    batch = run_export(format="messages", validation_ratio=0.4, seed=7)
    sides = {}
    for split in ("train", "validation"):
        for line in read_jsonl(Path(batch.path) / f"{split}.jsonl"):
            question = line["messages"][1]["content"]
            sides.setdefault(question, set()).add(split)
    assert len(sides) == 12 and all(len(s) == 1 for s in sides.values())
    assert {s for v in sides.values() for s in v} == {"train", "validation"}
    assert batch.manifest["split"] == {"by": "conversation", "validation_ratio": 0.4, "seed": 7}


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.jsonl").write_text(
        "".join(json.dumps({"text": f"一般的な文章その{i}。"}, ensure_ascii=False) + "\n" for i in range(50)),
        encoding="utf-8",
    )
    (folder / "b.txt").write_text("".join(f"平文の行{i}。連絡先は090-0000-{i:04d}\n\n" for i in range(50)), "utf-8")
    return folder


def test_replay_lines_are_mixed_in_at_the_ratio_from_a_recorded_seed(operator, reviewer, run_export, corpus):
    for n in range(40):
        factories.approved_example(operator=operator, reviewer=reviewer, chosen=distinct_text(n))
    batch = run_export(replay_corpus=corpus, replay_ratio=0.2, seed=42)
    train = read_jsonl(Path(batch.path) / "train.jsonl")
    replay = [line for line in train if "[INST]" not in line["text"]]
    assert len(train) == 50 and len(replay) == 10, "10 of 50 lines: 20%"
    assert train[-1] in replay or any(line in replay for line in train[:40]), "interleaved, not appended"
    assert all("090-0000" not in line["text"] for line in replay), "replay text is masked too"
    manifest = batch.manifest
    assert manifest["replay"]["ratio"] == 0.2 and manifest["replay"]["seed"] == 42
    assert manifest["replay"]["source"] == str(corpus) and manifest["replay"]["corpus_lines"] == 100
    assert manifest["counts"]["replay_lines"] == 10
    # The same seed on the same data writes the same bytes.
    again = run_export(replay_corpus=corpus, replay_ratio=0.2, seed=42, reexport=True)
    assert again.manifest["files"]["train.jsonl"]["sha256"] == manifest["files"]["train.jsonl"]["sha256"]


def test_other_formats_get_replay_in_its_own_file(operator, reviewer, run_export, corpus):
    for n in range(8):
        factories.approved_example(operator=operator, reviewer=reviewer, chosen=distinct_text(n))
    batch = run_export(format="messages", replay_corpus=corpus, seed=1)
    assert len(read_jsonl(Path(batch.path) / "replay.jsonl")) == 2
    assert batch.manifest["replay"]["in"] == "replay.jsonl"
    assert "replay.jsonl" in batch.manifest["files"]


def test_a_bad_replay_corpus_is_refused_before_anything_is_queued(operator, reviewer, run_export, tmp_path):
    factories.approved_example(operator=operator, reviewer=reviewer)
    with pytest.raises(services.ExportInvalid) as caught:
        run_export(replay_corpus=tmp_path / "missing.jsonl")
    assert "replay_corpus" in caught.value.errors
    assert not ExportBatch.objects.exists()


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the export may catch it and tidy up."""


def test_a_worker_that_dies_mid_export_leaves_no_batch_and_a_retry_finishes_it(
    operator, reviewer, monkeypatch, export_dir
):
    for n in range(5):
        factories.approved_example(operator=operator, reviewer=reviewer, chosen=distinct_text(n))
    batch = ExportBatch.objects.create(format="karakuri-sft", seed=3, validation_ratio=0, out_dir=str(export_dir))
    real_write = export._HashingWriter.write
    written = []

    def dying_write(self, obj):
        if len(written) == 3:
            raise WorkerKilled
        written.append(obj)
        real_write(self, obj)

    monkeypatch.setattr(export._HashingWriter, "write", dying_write)
    with pytest.raises(WorkerKilled):
        export.batch_build(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.status == ExportBatch.Status.RUNNING and not batch.path
    assert not (export_dir / batch.name).exists(), "nothing visible under the batch's name"
    assert TrainingExample.objects.filter(export_batch=batch).count() == 5, "the examples stay with the batch"

    # The redelivered task starts once the dead worker's lease has run out.
    ExportBatch.objects.filter(id=batch.id).update(lease_until=timezone.now() - timezone.timedelta(seconds=1))
    monkeypatch.setattr(export._HashingWriter, "write", real_write)
    export.batch_build(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.status == ExportBatch.Status.READY and batch.attempts == 2
    assert len(read_jsonl(Path(batch.path) / "train.jsonl")) == 5
    assert [p.name for p in export_dir.iterdir()] == [batch.name], "the dead attempt's temporary folder is gone"


def test_a_live_attempt_is_not_run_twice(operator, reviewer, export_dir):
    factories.approved_example(operator=operator, reviewer=reviewer)
    batch = ExportBatch.objects.create(
        format="karakuri-sft",
        seed=3,
        validation_ratio=0,
        out_dir=str(export_dir),
        status=ExportBatch.Status.RUNNING,
        lease_until=timezone.now() + timezone.timedelta(minutes=5),
    )
    export.batch_build(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.status == ExportBatch.Status.RUNNING and batch.attempts == 0


def test_a_failed_export_gives_its_examples_back(operator, reviewer, run_export, monkeypatch):
    factories.approved_example(operator=operator, reviewer=reviewer)

    def broken(self, example):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(export.Renderer, "render", broken)
    batch = run_export()
    assert batch.status == ExportBatch.Status.FAILED and "renderer exploded" in batch.error
    assert not BatchItem.objects.exists()
    assert TrainingExample.objects.get().export_batch is None
    assert list(Path(batch.out_dir).iterdir()) == []
    monkeypatch.undo()
    assert services.exportable_count() == 1
    with pytest.MonkeyPatch.context():
        services.batch_retry(batch_id=batch.id)
    # batch_retry enqueues on commit; run it here.
    export.batch_build(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.status == ExportBatch.Status.READY


def test_an_example_sent_back_to_review_after_selection_waits_for_a_later_batch(
    operator, reviewer, export_dir, monkeypatch
):
    example = factories.approved_example(operator=operator, reviewer=reviewer)
    batch = ExportBatch.objects.create(format="karakuri-sft", seed=3, validation_ratio=0, out_dir=str(export_dir))
    real_select = export._batch_select

    def select_then_edit(b):
        real_select(b)
        services.example_edit(
            example_id=example.id,
            actor=reviewer,
            revision=example.revision,
            chosen_text="新しい回答",
            attributes=example.attributes,
        )

    monkeypatch.setattr(export, "_batch_select", select_then_edit)
    export.batch_build(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.status == ExportBatch.Status.EMPTY and not batch.path, "an empty batch is never offered"
    assert batch.manifest["counts"]["skipped"]["not_approved"] == 1
    example.refresh_from_db()
    assert example.export_batch is None and not BatchItem.objects.filter(batch=batch).exists()


@pytest.mark.django_db(transaction=True)
def test_the_command_exports_and_prints_the_folder(operator, reviewer, export_dir, capsys, corpus):
    factories.approved_example(operator=operator, reviewer=reviewer)
    out = export_dir / "by-command"
    call_command(
        "export_training_data",
        "--format",
        "steerlm",
        "--out",
        str(out),
        "--replay-corpus",
        str(corpus),
        "--seed",
        "5",
        "--since",
        "2000-01-01",
    )
    printed = capsys.readouterr()
    batch = ExportBatch.objects.get()
    assert printed.out.strip() == batch.path and Path(batch.path).parent == out
    assert batch.seed == 5 and batch.replay_ratio == 0.2
    assert "1 examples" in printed.err


def test_the_command_says_when_there_is_nothing_to_export(capsys, export_dir):
    call_command("export_training_data", "--format", "dpo")
    assert "Nothing to export" in capsys.readouterr().out
