"""The `neuron` backend: KARAKURI LM compiled for AWS Inferentia2 / Trainium with transformers-neuronx.

Two steps, never mixed:

1. `python manage.py neuron_compile --model DIR --out DIR --tp-degree N ...` loads the checkpoint, compiles it
   for the NeuronCores (`to_neuron()` without artifacts compiles) and saves the compiled artifacts (`save()`),
   with a manifest of the options used.
2. Serving (`REPLY_BACKEND=neuron`) checks the manifest against the settings, points the model at the artifacts
   (`load()`) and calls `to_neuron()`, which then only loads them. It refuses to start rather than compile on the
   request path when artifacts are missing or were compiled with other options.

`LlamaForSampling` (70B Chat) or `MixtralForSampling` (8x7B Chat) is chosen from the model's config.json. Tokens
stream through the `streamer` argument of `sample()`; cancelling uses `stopping_criteria_list` where the installed
release has it, and otherwise aborts from the streamer.

transformers-neuronx comes only from the Neuron SDK's package index (see NEURON_SDK_HINT); it is imported lazily
so that every other backend works without it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from apps.llm.backends.hf import iterate_streamer, reply_end_ids
from apps.llm.errors import BackendUnavailable
from apps.llm.prompt import RenderedPrompt, load_tokenizer, render_prompt
from apps.llm.streaming import GenerationRun, clean_stream
from apps.llm.types import ReplyRequest

logger = logging.getLogger(__name__)

NEURON_SDK_INDEX = "https://pip.repos.neuron.amazonaws.com"
NEURON_SDK_RELEASES = "2.18 to 2.26"
NEURON_SDK_HINT = (
    "REPLY_BACKEND=neuron needs transformers-neuronx from the AWS Neuron SDK (releases "
    f"{NEURON_SDK_RELEASES}, Python 3.9-3.11), on an Inf2 or Trn1 host with the Neuron driver and runtime. "
    f"Install it from the Neuron package index, not PyPI (the PyPI package is a placeholder): "
    f"pip install --extra-index-url {NEURON_SDK_INDEX} transformers-neuronx. "
    "AWS has moved new work to NxD Inference; this backend targets transformers-neuronx. "
    "Without a Neuron host, use REPLY_BACKEND=hf or openai."
)
MANIFEST_NAME = "karakuri-neuron.json"
SUPPORTED_MODEL_TYPES = {"llama": "LlamaForSampling", "mixtral": "MixtralForSampling"}


@dataclass(frozen=True)
class NeuronOptions:
    """What a compiled artifact is specific to: serving must use the same values it was compiled with."""

    tp_degree: int = 2
    amp: str = "bf16"
    sequence_buckets: tuple[int, ...] = (1024, 2048, 4096)
    context_buckets: tuple[int, ...] = ()
    batch_size: int = 1

    def constructor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of LlamaForSampling / MixtralForSampling (and their from_pretrained)."""
        buckets = list(self.sequence_buckets)
        kwargs: dict[str, Any] = {
            "batch_size": self.batch_size,
            "tp_degree": self.tp_degree,
            "amp": self.amp,
            "n_positions": buckets if len(buckets) > 1 else buckets[0],
        }
        if self.context_buckets:
            kwargs["context_length_estimate"] = list(self.context_buckets)
        return kwargs

    @property
    def max_positions(self) -> int:
        return max(self.sequence_buckets)


def import_neuronx() -> SimpleNamespace:
    """The transformers-neuronx classes this backend uses, or BackendUnavailable saying what to install."""
    try:
        from transformers_neuronx.llama.model import LlamaForSampling
        from transformers_neuronx.mixtral.model import MixtralForSampling
    except Exception as exc:  # ImportError, or the PyPI placeholder raising on import
        raise BackendUnavailable(f"{NEURON_SDK_HINT} (import failed: {type(exc).__name__}: {exc})") from exc
    try:
        import transformers_neuronx

        version = getattr(transformers_neuronx, "__version__", "unknown")
    except Exception:  # pragma: no cover - the import above already succeeded
        version = "unknown"
    return SimpleNamespace(LlamaForSampling=LlamaForSampling, MixtralForSampling=MixtralForSampling, version=version)


def model_type(model_dir: Path) -> str:
    config_path = Path(model_dir) / "config.json"
    if not config_path.exists():
        raise BackendUnavailable(f"{model_dir} is not a model directory (no config.json)", backend="neuron")
    kind = json.loads(config_path.read_text(encoding="utf-8")).get("model_type", "")
    if kind not in SUPPORTED_MODEL_TYPES:
        raise BackendUnavailable(
            f"{model_dir}: model_type {kind!r} is not supported on Neuron here "
            f"(supported: {', '.join(sorted(SUPPORTED_MODEL_TYPES))})",
            backend="neuron",
        )
    return kind


def model_class(model_dir: Path, neuronx: SimpleNamespace | None = None) -> Any:
    """LlamaForSampling for a Llama checkpoint (70B Chat), MixtralForSampling for a Mixtral one (8x7B Chat)."""
    neuronx = neuronx or import_neuronx()
    return getattr(neuronx, SUPPORTED_MODEL_TYPES[model_type(model_dir)])


def _config_digest(model_dir: Path) -> str:
    return hashlib.sha256((Path(model_dir) / "config.json").read_bytes()).hexdigest()


def neuron_compile(*, model_dir: Path, out_dir: Path, options: NeuronOptions) -> Path:
    """Compile `model_dir` for Neuron with `options` and save the artifacts and a manifest in `out_dir`.

    Takes minutes to hours for a 70B model and needs the NeuronCores it is compiled for; run it once per model
    and option set, on the serving host type.
    """
    neuronx = import_neuronx()
    cls = model_class(model_dir, neuronx)
    started = time.monotonic()
    model = cls.from_pretrained(str(model_dir), **options.constructor_kwargs())
    model.to_neuron()  # no artifacts loaded: this compiles
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    manifest = {
        "model_dir": str(Path(model_dir).resolve()),
        "model_type": model_type(model_dir),
        "model_class": cls.__name__,
        "config_sha256": _config_digest(model_dir),
        "options": asdict(options),
        "transformers_neuronx": neuronx.version,
        "compiled_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "compile_seconds": round(time.monotonic() - started, 1),
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out_dir


def check_artifacts(*, model_dir: Path, artifact_dir: Path, options: NeuronOptions) -> dict[str, Any]:
    """The manifest of `artifact_dir`, after checking it matches the model and the serving options."""
    manifest_path = Path(artifact_dir) / MANIFEST_NAME
    compile_hint = (
        f"python manage.py neuron_compile --model {model_dir} --out {artifact_dir} --tp-degree {options.tp_degree} "
        f"--amp {options.amp} --sequence-buckets {','.join(map(str, options.sequence_buckets))} "
        f"--batch-size {options.batch_size}"
    )
    if not manifest_path.exists():
        raise BackendUnavailable(
            f"no compiled Neuron artifacts in {artifact_dir}; serving never compiles. Compile once with: {compile_hint}",
            backend="neuron",
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    compiled = manifest.get("options", {})
    wanted = asdict(options)
    differences = [
        f"{key}: compiled {compiled.get(key)!r}, settings {wanted[key]!r}"
        for key in wanted
        if _normalise(compiled.get(key)) != _normalise(wanted[key])
    ]
    if manifest.get("config_sha256") != _config_digest(model_dir):
        differences.append(f"config.json of {model_dir} differs from the compiled model's")
    if differences:
        raise BackendUnavailable(
            f"the artifacts in {artifact_dir} do not match: {'; '.join(differences)}. "
            f"Fix the LLM_NEURON_* settings or recompile with: {compile_hint}",
            backend="neuron",
        )
    return manifest


def _normalise(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


class _TokenStreamer:
    """The `streamer` given to sample(): forwards row 0 to a TextIteratorStreamer, watches EOS, cancel, deadline."""

    def __init__(self, inner: Any, run: GenerationRun, end_ids: set[int], *, abort_on_cancel: bool) -> None:
        self.inner = inner
        self.run = run
        self.end_ids = end_ids
        self.abort_on_cancel = abort_on_cancel
        self.ended = False

    def put(self, value: Any) -> None:
        row = value[:1] if getattr(value, "dim", lambda: 1)() > 1 else value
        token = int(row.reshape(-1)[-1])
        if self.ended:
            return
        self.run.generated_tokens += 1
        if token in self.end_ids:
            self.ended = True
            self.run.cancel.set()  # stop at the next step: the rest of the batch row is padding
        else:
            self.inner.put(row)
        if time.monotonic() > self.run.deadline:
            self.run.timed_out = True
        if self.abort_on_cancel and (self.run.cancel.is_set() or self.run.timed_out):
            raise _SampleAborted

    def end(self) -> None:
        self.inner.end()


class _CancelOrDeadline(list):
    """transformers-neuronx's StoppingCriteriaList protocol: called with (prompt ids, probs) each step, returns a
    plain bool (its own list class is `any()` over criteria returning bools, unlike transformers' tensors)."""

    def __init__(self, run: GenerationRun) -> None:
        super().__init__()
        self.run = run

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
        return self.run.should_stop()


class _SampleAborted(Exception):
    """Raised from the streamer to leave sample() on releases without stopping_criteria_list."""


class NeuronBackend:
    """Serves compiled artifacts; one sample() at a time per process (the KV cache lives on the device)."""

    name = "neuron"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        artifact_dir: str | Path,
        options: NeuronOptions,
        context_tokens: int = 4096,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 1.0,
        timeout: float = 60.0,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.artifact_dir = Path(artifact_dir)
        self.options = options
        neuronx = import_neuronx()
        cls = model_class(self.model_dir, neuronx)
        self.manifest = check_artifacts(model_dir=self.model_dir, artifact_dir=self.artifact_dir, options=options)
        self.model = cls.from_pretrained(str(self.model_dir), **options.constructor_kwargs())
        self.model.load(str(self.artifact_dir))
        self.model.to_neuron()  # with artifacts loaded this only loads them onto the NeuronCores
        self.tokenizer = load_tokenizer(str(self.model_dir))
        self.model_id = f"{self.name}:{self.model_dir.name}:tp{options.tp_degree}-{options.amp}"
        self.context_tokens = min(context_tokens, options.max_positions)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.timeout = timeout
        self.end_ids = reply_end_ids(_HfConfigView(self.model_dir), self.tokenizer)
        parameters = inspect.signature(self.model.sample).parameters
        self._has_stopping_criteria = "stopping_criteria_list" in parameters
        self._has_eos_override = "eos_token_override" in parameters
        self._lock = threading.Lock()
        self.last_run: GenerationRun | None = None

    def render(self, request: ReplyRequest) -> RenderedPrompt:
        return render_prompt(
            request, tokenizer=self.tokenizer, max_prompt_tokens=self.context_tokens - self.max_new_tokens
        )

    def stream(self, request: ReplyRequest) -> Iterator[str]:
        prompt = self.render(request)
        yield from clean_stream(self._generate(prompt), stops=prompt.stop, backend=self.name)

    def _generate(self, prompt: RenderedPrompt) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        assert prompt.token_ids is not None
        input_ids = torch.tensor([prompt.token_ids], dtype=torch.long)
        if self.options.batch_size > 1:
            # Compiled for a fixed batch: fill it with copies and read row 0.
            input_ids = input_ids.repeat(self.options.batch_size, 1)
        run = GenerationRun(prompt_tokens=input_ids.shape[-1], deadline=time.monotonic() + self.timeout)
        self.last_run = run
        text_streamer = TextIteratorStreamer(self.tokenizer, timeout=self.timeout, skip_special_tokens=True)
        streamer = _TokenStreamer(
            text_streamer, run, set(self.end_ids), abort_on_cancel=not self._has_stopping_criteria
        )
        kwargs: dict[str, Any] = {
            "sequence_length": min(input_ids.shape[-1] + self.max_new_tokens, self.options.max_positions),
            "streamer": streamer,
            "top_k": 50 if self.temperature > 0 else 1,
        }
        if self.temperature > 0:
            kwargs.update(temperature=float(self.temperature), top_p=float(self.top_p))
        if self._has_stopping_criteria:
            kwargs["stopping_criteria_list"] = _CancelOrDeadline(run)
        if self._has_eos_override:
            kwargs["eos_token_override"] = self.end_ids[0]

        def work() -> None:
            try:
                with self._lock:
                    if not run.cancel.is_set():
                        self.model.sample(input_ids, **kwargs)
            except _SampleAborted:
                text_streamer.end()
            except BaseException as exc:  # reported to the consumer as a BackendError
                run.error = exc
                text_streamer.end()
            finally:
                run.finished.set()

        run.thread = threading.Thread(target=work, name="neuron-sample", daemon=True)
        run.thread.start()
        yield from iterate_streamer(text_streamer, run, backend=self.name, timeout=self.timeout)


class _HfConfigView:
    """Just enough of a model for reply_end_ids(): the generation config's EOS ids from the directory."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import GenerationConfig

        self.generation_config: GenerationConfig | None
        try:
            self.generation_config = GenerationConfig.from_pretrained(str(model_dir), local_files_only=True)
        except OSError:
            self.generation_config = None
