"""Writing an export batch: select, mask, drop duplicates, split, render, mix replay, publish.

`batch_build` is what the Celery task runs. It is safe to run again for the same batch at any point:

1. The batch's examples are chosen once, in one transaction (`BatchItem` rows; a normal export also sets each
   example's `export_batch`, with a conditional UPDATE, so two batches can never take the same example). A
   retry writes exactly those examples again.
2. Files are written, streaming, into a hidden temporary folder next to the destination (never holding the
   batch in memory); sha256 and line counts are taken as the bytes go out.
3. The finished folder is renamed into place (atomic on one file system), and only then is the database row
   marked `ready`: the queue API shows only ready rows, so nobody sees a half-written batch. Leftovers of a
   dead attempt (a temporary folder, or a renamed folder whose row never became ready) are removed first.

If the task gives up, `batch_fail` returns the examples to the export queue, so none is lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.llm.errors import PromptTooLong, UnsafePrompt
from apps.training.dedup import PERMUTATIONS, Deduper, minhash_signatures
from apps.training.formats import ExampleText, Renderer
from apps.training.masking import Masker
from apps.training.models import BatchItem, ExportBatch, TrainingExample
from apps.training.replay import corpus_files, corpus_size, replay_count, sample_counts, sampled_texts

logger = logging.getLogger(__name__)

MANIFEST_SCHEMA = 1
CHUNK = 1000
_FINAL = (ExportBatch.Status.READY, ExportBatch.Status.CLAIMED, ExportBatch.Status.CONSUMED, ExportBatch.Status.EMPTY)


def _lease() -> timedelta:
    # Longer than a task may run: another delivery of the task waits until a dead worker's lease runs out.
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)


class _HashingWriter:
    """A JSONL file that counts its lines and bytes and hashes them as they are written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        self.bytes = 0
        self._sha = hashlib.sha256()
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()

    def write_raw(self, data: bytes) -> None:
        self._fh.write(data)
        self._sha.update(data)
        self.lines += 1
        self.bytes += len(data)

    def write(self, obj: dict) -> None:
        self.write_raw((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> dict:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return {"sha256": self._sha.hexdigest(), "bytes": self.bytes, "lines": self.lines}


def batch_build(*, batch_id: int) -> ExportBatch | None:
    """Export batch `batch_id` (see the module docstring). Returns the batch, or None if it does not exist.

    A batch already finished, or held by another live attempt, is returned untouched.
    """
    batch = _batch_start(batch_id)
    if batch is None:
        return ExportBatch.objects.filter(id=batch_id).first()
    try:
        if batch.stage in ("", "queued"):
            _batch_select(batch)
        if batch.progress_total == 0:
            _batch_finish(batch, status=ExportBatch.Status.EMPTY, manifest=None, path="")
            return batch
        manifest, path = _batch_write(batch)
        if manifest["counts"]["examples"] == 0:
            # Every example was sent back to review, a duplicate or unrenderable: nothing for a trainer.
            shutil.rmtree(path)
            _batch_finish(batch, status=ExportBatch.Status.EMPTY, manifest=manifest, path="")
            return batch
        _batch_finish(batch, status=ExportBatch.Status.READY, manifest=manifest, path=str(path))
    except BaseException:
        # Let the next attempt start at once instead of waiting for the lease (the task decides whether there
        # is one). A worker killed outright never gets here; its lease runs out instead.
        ExportBatch.objects.filter(id=batch_id, status=ExportBatch.Status.RUNNING).update(lease_until=None)
        raise
    return batch


def _batch_start(batch_id: int) -> ExportBatch | None:
    now = timezone.now()
    taken = (
        ExportBatch.objects.filter(id=batch_id)
        .filter(
            Q(status=ExportBatch.Status.QUEUED)
            | Q(status=ExportBatch.Status.RUNNING, lease_until__isnull=True)
            | Q(status=ExportBatch.Status.RUNNING, lease_until__lt=now)
        )
        .update(status=ExportBatch.Status.RUNNING, lease_until=now + _lease(), error="")
    )
    if not taken:
        return None
    batch = ExportBatch.objects.get(id=batch_id)
    batch.attempts += 1
    batch.started_at = batch.started_at or now
    batch.save(update_fields=["attempts", "started_at"])
    return batch


def _progress(batch: ExportBatch, *, stage: str, done: int | None = None) -> None:
    fields: dict = {"stage": stage, "lease_until": timezone.now() + _lease()}
    if done is not None:
        fields["progress_done"] = done
        batch.progress_done = done
    batch.stage = stage
    ExportBatch.objects.filter(id=batch.id).update(**fields)


def _candidates(batch: ExportBatch):
    examples = TrainingExample.objects.filter(status=TrainingExample.Status.APPROVED)
    if batch.since:
        examples = examples.filter(created_at__gte=batch.since)
    if batch.until:
        examples = examples.filter(created_at__lt=batch.until)
    if not batch.reexport:
        examples = examples.filter(export_batch__isnull=True)
    return examples


def _batch_select(batch: ExportBatch) -> None:
    with transaction.atomic():
        candidates = _candidates(batch)
        if batch.reexport:
            chosen = candidates
            # Examples never exported before count as exported by this batch, so a normal export later does
            # not write them a second time.
            candidates.filter(export_batch__isnull=True).update(export_batch=batch)
        else:
            # One conditional UPDATE: on PostgreSQL a concurrent export waits for this row lock and then sees
            # export_batch set, so it skips the row; an example can never land in two normal batches.
            candidates.update(export_batch=batch)
            chosen = TrainingExample.objects.filter(export_batch=batch)
        # INSERT ... SELECT in the database: a hundred thousand items without a model instance each.
        select_sql, params = chosen.values("id").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {BatchItem._meta.db_table} (batch_id, example_id) "  # noqa: S608 - no user input
                f"SELECT %s, chosen.id FROM ({select_sql}) chosen",
                [batch.id, *params],
            )
        total = BatchItem.objects.filter(batch=batch).count()
        batch.progress_total = total
        batch.stage = "selected"
        ExportBatch.objects.filter(id=batch.id).update(progress_total=total, stage="selected")


def _batch_finish(batch: ExportBatch, *, status: str, manifest: dict | None, path: str) -> None:
    now = timezone.now()
    batch.status, batch.manifest, batch.path, batch.finished_at = status, manifest, path, now
    batch.stage, batch.lease_until = "done", None
    ExportBatch.objects.filter(id=batch.id).update(
        status=status, manifest=manifest, path=path, finished_at=now, stage="done", lease_until=None
    )


def batch_fail(*, batch_id: int, error: str) -> None:
    """Give up on a batch: its examples go back to the export queue, and no folder is left behind."""
    with transaction.atomic():
        batch = ExportBatch.objects.select_for_update().filter(id=batch_id).first()
        if batch is None or batch.status in _FINAL:
            return
        TrainingExample.objects.filter(export_batch=batch).update(export_batch=None)
        BatchItem.objects.filter(batch=batch).delete()
        ExportBatch.objects.filter(id=batch_id).update(
            status=ExportBatch.Status.FAILED,
            error=error[:5000],
            stage="failed",
            lease_until=None,
            finished_at=timezone.now(),
            progress_total=0,
            progress_done=0,
        )
    _remove_leftovers(Path(batch.out_dir), batch.name)


def _remove_leftovers(root: Path, name: str) -> None:
    if not root.is_dir():
        return
    for leftover in root.glob(f".{name}.*"):
        shutil.rmtree(leftover, ignore_errors=True)
    # A folder renamed into place by an attempt that died before marking the row ready: nobody was told of
    # it (the queue reads the row), and this attempt writes the same content again.
    if (root / name).exists():
        shutil.rmtree(root / name)


def _examples(batch: ExportBatch) -> Iterator[tuple]:
    return (
        TrainingExample.objects.filter(batch_items__batch=batch)
        .order_by("id")
        .values_list(
            "id",
            "status",
            "conversation_id",
            "chosen_text",
            "rejected_text",
            "attributes",
            "created_at",
            "correction__context",
            "correction__kb_revision",
            "correction__model_id",
        )
        .iterator(chunk_size=CHUNK)
    )


def _chunks(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def split_of(conversation_id: object, *, seed: int, validation_ratio: float) -> str:
    """train or validation, by conversation: every example of a conversation lands on the same side."""
    if validation_ratio <= 0:
        return "train"
    digest = hashlib.blake2b(f"{seed}:{conversation_id}".encode(), digest_size=8).digest()
    return "validation" if int.from_bytes(digest, "big") / 2**64 < validation_ratio else "train"


def _masked(masker: Masker, row: tuple) -> ExampleText:
    _, _, _, chosen, rejected, attributes, _, context, _, _ = row
    return ExampleText(
        turns=[{"role": t["role"], "content": masker.mask(t["content"])} for t in context.get("turns", [])],
        faq=[
            {
                "faq_id": f["faq_id"],
                "question": masker.mask_repeated(f["question"]),
                "answer": masker.mask_repeated(f["answer"]),
                "score": f.get("score", 0.0),
            }
            for f in context.get("faq", [])
        ],
        confident=bool(context.get("confident")),
        is_first_reply=bool(context.get("is_first_reply", True)),
        attributes=attributes,
        chosen=masker.mask(chosen),
        rejected=masker.mask(rejected),
    )


def _release(batch: ExportBatch, example_ids) -> None:
    """Take examples sent back to review since they were chosen out of the batch, free for a later one."""
    ids = list(example_ids)
    if not ids:
        return
    with transaction.atomic():
        BatchItem.objects.filter(batch=batch, example_id__in=ids).delete()
        TrainingExample.objects.filter(id__in=ids, export_batch=batch).update(export_batch=None)


def _dedup_text(example: ExampleText) -> str:
    # What the customer asked and what the answer should be; earlier bot turns do not make an example new.
    asked = "\n".join(t["content"] for t in example.turns if t["role"] == "user")
    return asked + "\n\n" + example.chosen


def _renderer(fmt: str) -> Renderer:
    from apps.llm.prompt import configured_tokenizer, prompt_budget

    return Renderer(fmt, tokenizer=configured_tokenizer(), max_prompt_tokens=prompt_budget())


def _batch_write(batch: ExportBatch) -> tuple[dict, Path]:
    root = Path(batch.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root, batch.name)
    work = Path(tempfile.mkdtemp(prefix=f".{batch.name}.", dir=root))
    options = batch.options or {}
    masker = Masker(kinds=tuple(options.get("pii_kinds", ())), allow=tuple(options.get("pii_allow", ())))
    deduper = Deduper(similarity=float(options.get("near_duplicate_similarity", 0.8)))
    renderer = _renderer(batch.format)
    # Sent back to review since they were chosen: not exported now, and free for a later batch.
    sent_back = list(
        TrainingExample.objects.filter(batch_items__batch=batch)
        .exclude(status=TrainingExample.Status.APPROVED)
        .values_list("id", flat=True)
    )
    _release(batch, sent_back)
    mix_replay = bool(batch.replay_corpus) and batch.format == "karakuri-sft"
    writers = {
        "train": _HashingWriter(work / ("train.examples.part" if mix_replay else "train.jsonl")),
        "validation": _HashingWriter(work / "validation.jsonl"),
    }
    counts: Counter = Counter()
    skipped_ids: dict[str, list[int]] = {"unrenderable": [], "not_approved": sent_back}
    kb_revisions: set[int] = set()
    model_ids: set[str] = set()
    first = last = None
    late: list[int] = []  # sent back to review while this loop ran
    done = 0
    _progress(batch, stage="examples", done=0)
    for chunk in _chunks(_examples(batch), CHUNK):
        approved = [row for row in chunk if row[1] == TrainingExample.Status.APPROVED]
        late.extend(row[0] for row in chunk if row[1] != TrainingExample.Status.APPROVED)
        texts = [_masked(masker, row) for row in approved]
        keys = [_dedup_text(t) for t in texts]
        verdicts = deduper.check_many(keys, minhash_signatures(keys) if deduper.near else None)
        for row, text, duplicate in zip(approved, texts, verdicts, strict=True):
            example_id, _, conversation_id, _, _, _, created_at, _, kb_revision, model_id = row
            if duplicate:
                counts[f"duplicate_{duplicate}"] += 1
                continue
            try:
                obj = renderer.render(text)
            except (PromptTooLong, UnsafePrompt, ValueError, KeyError) as exc:
                logger.warning("example %s cannot be rendered: %s", example_id, exc)
                skipped_ids["unrenderable"].append(example_id)
                continue
            if obj is None:
                counts["no_pair"] += 1
                continue
            split = split_of(conversation_id, seed=batch.seed, validation_ratio=batch.validation_ratio)
            writers[split].write(obj)
            counts[split] += 1
            if kb_revision is not None:
                kb_revisions.add(kb_revision)
            if model_id:
                model_ids.add(model_id)
            first = created_at if first is None or created_at < first else first
            last = created_at if last is None or created_at > last else last
        done += len(chunk)
        _progress(batch, stage="examples", done=done)

    # Released after the loop: SQLite must not see writes to a table it is still reading from.
    _release(batch, late)
    skipped_ids["not_approved"].extend(late)
    files = {"validation.jsonl": writers["validation"].close()}
    train_part = writers["train"].close()
    replay = None
    if batch.replay_corpus:
        _progress(batch, stage="replay")
        replay = _write_replay(batch, work, masker, train_examples=counts["train"])
        if mix_replay:
            files["train.jsonl"] = _interleave(
                work / "train.examples.part", work / "replay.part", work / "train.jsonl", seed=batch.seed
            )
            (work / "train.examples.part").unlink()
            (work / "replay.part").unlink()
        else:
            files["train.jsonl"] = train_part
            (work / "replay.part").rename(work / "replay.jsonl")
            files["replay.jsonl"] = replay.pop("file")
        replay.pop("file", None)
    else:
        files["train.jsonl"] = train_part

    _progress(batch, stage="publishing")
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "batch": batch.name,
        "batch_id": batch.id,
        "format": batch.format,
        "created_at": timezone.now().isoformat(),
        "reexport": batch.reexport,
        "selection": {
            "since": batch.since.isoformat() if batch.since else None,
            "until": batch.until.isoformat() if batch.until else None,
        },
        "counts": {
            "selected": batch.progress_total,
            "examples": counts["train"] + counts["validation"],
            "train_examples": counts["train"],
            "validation_examples": counts["validation"],
            "replay_lines": replay["lines"] if replay else 0,
            "dropped_duplicates": {
                "exact": counts["duplicate_exact"],
                "near": counts["duplicate_near"],
                "total": counts["duplicate_exact"] + counts["duplicate_near"],
            },
            "masked_spans": {"total": sum(masker.counts.values()), **dict(sorted(masker.counts.items()))},
            "skipped": {
                "no_pair": counts["no_pair"],
                "unrenderable": len(skipped_ids["unrenderable"]),
                "not_approved": len(skipped_ids["not_approved"]),
            },
        },
        "skipped_example_ids": {k: v[:1000] for k, v in skipped_ids.items() if v},
        "files": dict(sorted(files.items())),
        "kb_revisions": sorted(kb_revisions),
        "model_ids": sorted(model_ids),
        "date_range": {
            "first": first.isoformat() if first else None,
            "last": last.isoformat() if last else None,
        },
        "replay": replay,
        "seed": batch.seed,
        "split": {"by": "conversation", "validation_ratio": batch.validation_ratio, "seed": batch.seed},
        "renderer": {
            "format": renderer.prompt_format(),
            "model_dir": str(settings.LLM_MODEL_DIR) if settings.LLM_MODEL_DIR else None,
            "max_prompt_tokens": renderer.max_prompt_tokens,
        },
        "pii": {"kinds": list(masker.kinds), "allow_list_entries": len(tuple(options.get("pii_allow", ())))},
        "dedup": {"near_duplicate_similarity": deduper.similarity, "minhash_permutations": PERMUTATIONS},
    }
    with open(work / "manifest.json", "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(work, 0o755)  # mkdtemp makes it private to this user
    final = root / batch.name
    os.rename(work, final)
    _fsync_dir(root)
    return manifest, final


def _write_replay(batch: ExportBatch, work: Path, masker: Masker, *, train_examples: int) -> dict:
    files = corpus_files(Path(batch.replay_corpus))
    size = corpus_size(files)
    wanted = replay_count(train_examples, batch.replay_ratio)
    counts = sample_counts(size, wanted, batch.seed)
    writer = _HashingWriter(work / "replay.part")
    for text in sampled_texts(files, counts):
        writer.write({"text": masker.mask(text)})
    file = writer.close()
    return {
        "source": batch.replay_corpus,
        "files": [str(f) for f in files],
        "corpus_lines": size,
        "ratio": batch.replay_ratio,
        "seed": batch.seed,
        "lines": file["lines"],
        "in": "train.jsonl" if batch.format == "karakuri-sft" else "replay.jsonl",
        "file": file,
    }


def _interleave(examples: Path, replay: Path, out: Path, *, seed: int) -> dict:
    """Merge two JSONL files into `out` in a seeded random order, streaming (each keeps its own order)."""

    def count(path: Path) -> int:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)

    left = {"e": count(examples), "r": count(replay)}
    rng = random.Random(seed + 1)
    writer = _HashingWriter(out)
    with open(examples, "rb") as e_fh, open(replay, "rb") as r_fh:
        sources = {"e": e_fh, "r": r_fh}
        while left["e"] or left["r"]:
            pick = "r" if rng.random() * (left["e"] + left["r"]) < left["r"] else "e"
            writer.write_raw(sources[pick].readline())
            left[pick] -= 1
    return writer.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
