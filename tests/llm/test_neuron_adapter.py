"""The neuron backend's adapter against a stand-in transformers_neuronx (tests/llm/standin).

The real package needs a Neuron device and the Neuron SDK's own package index; the stand-in mirrors its module
paths and the signatures the adapter calls, and runs the checkpoint on the CPU.
"""

import inspect
import json

import pytest
from django.core.management import CommandError, call_command

from apps.llm.backends import backend_create
from apps.llm.backends.hf import HfBackend
from apps.llm.backends.neuron import (
    MANIFEST_NAME,
    NEURON_SDK_INDEX,
    NeuronBackend,
    NeuronOptions,
    import_neuronx,
    model_class,
    neuron_compile,
)
from apps.llm.errors import BackendUnavailable
from tests.llm.factories import reply_request

OPTIONS = NeuronOptions(tp_degree=2, amp="f32", sequence_buckets=(1024, 2048), batch_size=1)


def _calls(neuronx, name):
    return [c for c in neuronx.CALLS if c[0] == name]


@pytest.fixture
def compiled(neuronx, tiny_llama_dir, tmp_path):
    out = neuron_compile(model_dir=tiny_llama_dir, out_dir=tmp_path / "artifacts", options=OPTIONS)
    neuronx.CALLS.clear()
    return out


def test_neuron_adapter_missing_package_names_the_sdk_index_and_release(no_neuronx):
    with pytest.raises(BackendUnavailable) as error:
        import_neuronx()
    message = str(error.value)
    assert NEURON_SDK_INDEX in message
    assert "transformers-neuronx" in message
    assert "2.26" in message and "3.11" in message


def test_neuron_adapter_reports_the_pypi_placeholder_clearly(monkeypatch, tmp_path):
    package = tmp_path / "transformers_neuronx"
    package.mkdir()
    (package / "__init__.py").write_text('raise RuntimeError("This is a placeholder package")\n')
    import sys

    for name in [n for n in sys.modules if n.startswith("transformers_neuronx")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendUnavailable, match="placeholder"):
        import_neuronx()
    for name in [n for n in sys.modules if n.startswith("transformers_neuronx")]:
        monkeypatch.delitem(sys.modules, name)


def test_neuron_adapter_stand_in_mirrors_the_real_signatures(neuronx):
    from transformers_neuronx.llama.model import LlamaForSampling
    from transformers_neuronx.mixtral.model import MixtralForSampling

    for cls in (LlamaForSampling, MixtralForSampling):
        init = inspect.signature(cls.__init__).parameters
        assert [p for p in init if init[p].kind is inspect.Parameter.KEYWORD_ONLY][:5] == [
            "n_positions",
            "batch_size",
            "amp",
            "tp_degree",
            "context_length_estimate",
        ]
        sample = inspect.signature(cls.sample).parameters
        assert list(sample)[:3] == ["self", "input_ids", "sequence_length"]
        assert {"streamer", "stopping_criteria_list", "eos_token_override", "top_k"} <= set(sample)
        assert {"to_neuron", "save", "load", "from_pretrained"} <= set(dir(cls))


def test_neuron_adapter_chooses_the_class_from_config_json(neuronx, tiny_llama_dir, tiny_mixtral_dir, tmp_path):
    assert model_class(tiny_llama_dir).__name__ == "LlamaForSampling"
    assert model_class(tiny_mixtral_dir).__name__ == "MixtralForSampling"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(BackendUnavailable, match="gpt2"):
        model_class(tmp_path)


def test_neuron_adapter_compile_saves_artifacts_and_a_manifest(neuronx, tiny_llama_dir, tmp_path):
    out = neuron_compile(
        model_dir=tiny_llama_dir,
        out_dir=tmp_path / "artifacts",
        options=NeuronOptions(tp_degree=8, amp="bf16", sequence_buckets=(1024, 4096), context_buckets=(512,)),
    )

    assert _calls(neuronx, "init")[0][2] == {
        "n_positions": [1024, 4096],
        "batch_size": 1,
        "amp": "bf16",
        "tp_degree": 8,
        "context_length_estimate": [512],
    }
    assert len(_calls(neuronx, "compile")) == 1
    assert _calls(neuronx, "save") == [("save", str(out))]
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["model_class"] == "LlamaForSampling"
    assert manifest["options"]["tp_degree"] == 8
    assert sorted(p.name for p in out.glob("*.neff")) == ["graph-1024.neff", "graph-4096.neff"]


def test_neuron_adapter_serving_loads_artifacts_and_never_compiles(neuronx, compiled, tiny_llama_dir):
    backend = NeuronBackend(tiny_llama_dir, artifact_dir=compiled, options=OPTIONS, max_new_tokens=16)

    assert _calls(neuronx, "compile") == []
    assert _calls(neuronx, "load") == [("load", str(compiled))]
    assert _calls(neuronx, "load_artifacts") == [("load_artifacts", str(compiled))]
    assert backend.model_id == "neuron:tiny-llama:tp2-f32"


def test_neuron_adapter_refuses_to_serve_without_artifacts(neuronx, tiny_llama_dir, tmp_path):
    with pytest.raises(BackendUnavailable, match="neuron_compile"):
        NeuronBackend(tiny_llama_dir, artifact_dir=tmp_path / "nothing", options=OPTIONS)
    assert _calls(neuronx, "compile") == []


def test_neuron_adapter_refuses_artifacts_compiled_with_other_options(neuronx, compiled, tiny_llama_dir):
    other = NeuronOptions(tp_degree=4, amp="f32", sequence_buckets=(1024, 2048))
    with pytest.raises(BackendUnavailable, match="tp_degree: compiled 2, settings 4"):
        NeuronBackend(tiny_llama_dir, artifact_dir=compiled, options=other)


def test_neuron_adapter_streams_the_same_tokens_as_hf(neuronx, compiled, tiny_llama_dir):
    backend = NeuronBackend(tiny_llama_dir, artifact_dir=compiled, options=OPTIONS, max_new_tokens=16)
    reference = HfBackend(tiny_llama_dir, device="cpu", context_tokens=4096, max_new_tokens=16)
    request = reply_request()

    pieces = list(backend.stream(request))

    assert len(pieces) > 1
    assert "".join(pieces) == "".join(reference.stream(request))
    prompt_len = len(backend.render(request).token_ids)
    assert _calls(neuronx, "sample") == [("sample", prompt_len, prompt_len + 16)]


def test_neuron_adapter_close_stops_sampling(neuronx, compiled, tiny_llama_dir):
    backend = NeuronBackend(tiny_llama_dir, artifact_dir=compiled, options=OPTIONS, max_new_tokens=1000)
    stream = backend.stream(reply_request())
    next(stream), next(stream)

    stream.close()

    assert not backend.last_run.thread.is_alive()
    (steps,) = [c[1] for c in _calls(neuronx, "sample_steps")]
    assert steps < 1000


def test_neuron_adapter_cancels_on_releases_without_stopping_criteria(neuronx, compiled, tiny_llama_dir, monkeypatch):
    from transformers_neuronx.llama.model import LlamaForSampling

    full_sample = LlamaForSampling.sample

    def legacy_sample(self, input_ids, sequence_length, start_ids=None, top_k=50, streamer=None):
        return full_sample(self, input_ids, sequence_length, start_ids=start_ids, top_k=top_k, streamer=streamer)

    monkeypatch.setattr(LlamaForSampling, "sample", legacy_sample)
    backend = NeuronBackend(tiny_llama_dir, artifact_dir=compiled, options=OPTIONS, max_new_tokens=1000)
    stream = backend.stream(reply_request())
    next(stream)

    stream.close()

    assert not backend.last_run.thread.is_alive()
    assert _calls(neuronx, "sample_steps") == []  # left sample() from the streamer


def test_neuron_adapter_fills_a_compiled_batch(neuronx, tiny_llama_dir, tmp_path):
    options = NeuronOptions(tp_degree=2, amp="f32", sequence_buckets=(2048,), batch_size=2)
    out = neuron_compile(model_dir=tiny_llama_dir, out_dir=tmp_path / "b2", options=options)
    backend = NeuronBackend(tiny_llama_dir, artifact_dir=out, options=options, max_new_tokens=8)
    assert "".join(backend.stream(reply_request()))


def test_neuron_adapter_from_settings_and_the_compile_command(neuronx, settings, tiny_mixtral_dir, tmp_path):
    settings.LLM_MODEL_DIR = tiny_mixtral_dir
    settings.LLM_NEURON_ARTIFACT_DIR = tmp_path / "neuron"
    settings.LLM_NEURON_TP_DEGREE = 2
    settings.LLM_NEURON_AMP = "f32"
    settings.LLM_NEURON_SEQUENCE_BUCKETS = [2048]
    settings.LLM_NEURON_CONTEXT_BUCKETS = []
    settings.LLM_NEURON_BATCH_SIZE = 1
    settings.LLM_MAX_NEW_TOKENS = 8

    call_command("neuron_compile")
    backend = backend_create("neuron")

    assert isinstance(backend, NeuronBackend)
    assert [c[1] for c in _calls(neuronx, "compile")] == ["MixtralForSampling"]  # once, by the command
    assert "".join(backend.stream(reply_request()))


def test_neuron_adapter_compile_command_without_the_sdk_fails_clearly(no_neuronx, tiny_llama_dir, tmp_path):
    with pytest.raises(CommandError, match="pip.repos.neuron.amazonaws.com"):
        call_command("neuron_compile", model=str(tiny_llama_dir), out=str(tmp_path))
