"""Fixtures for the llm tests: tiny random Llama and Mixtral directories, built once per session.

The models are random and tiny (two layers, 64 wide), so they generate nonsense quickly; the tests check the
plumbing around them (prompt ids, streaming, stopping, cancelling, errors), never the words.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from apps.llm.backends.hf import HfBackend
from apps.llm.prompt import load_tokenizer
from apps.llm.testing import build_tiny_model

STANDIN_DIR = Path(__file__).resolve().parent / "standin"


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", arch="llama")


@pytest.fixture(scope="session")
def tiny_mixtral_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-mixtral", arch="mixtral")


@pytest.fixture(scope="session")
def llama_tokenizer(tiny_llama_dir):
    return load_tokenizer(str(tiny_llama_dir))


@pytest.fixture(scope="session")
def mixtral_tokenizer(tiny_mixtral_dir):
    return load_tokenizer(str(tiny_mixtral_dir))


@pytest.fixture(scope="session")
def llama_backend(tiny_llama_dir) -> HfBackend:
    return HfBackend(tiny_llama_dir, device="cpu", context_tokens=2048, max_new_tokens=24, timeout=60)


@pytest.fixture(scope="session")
def mixtral_backend(tiny_mixtral_dir) -> HfBackend:
    return HfBackend(tiny_mixtral_dir, device="cpu", context_tokens=2048, max_new_tokens=24, timeout=60)


def _forget_neuronx() -> None:
    for name in list(sys.modules):
        if name == "transformers_neuronx" or name.startswith("transformers_neuronx."):
            del sys.modules[name]


@pytest.fixture
def neuronx(monkeypatch):
    """The stand-in transformers_neuronx package on sys.path (see tests/llm/standin), its call log cleared."""
    _forget_neuronx()
    monkeypatch.syspath_prepend(str(STANDIN_DIR))
    import transformers_neuronx

    transformers_neuronx.CALLS.clear()
    yield transformers_neuronx
    _forget_neuronx()


@pytest.fixture
def no_neuronx(monkeypatch):
    """Make sure no transformers_neuronx can be imported (as on every machine without the Neuron SDK)."""
    _forget_neuronx()
    monkeypatch.setitem(sys.modules, "transformers_neuronx", None)
    yield
    _forget_neuronx()
