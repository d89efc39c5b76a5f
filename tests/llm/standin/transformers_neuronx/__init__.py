"""A stand-in for transformers-neuronx, for the adapter tests only (tests/llm/test_neuron_adapter.py).

The real package needs a Neuron device and comes from the Neuron SDK's own index, so it cannot run here. This
mirrors the parts apps.llm.backends.neuron uses, with the same module paths and signatures as
transformers-neuronx 0.13 (Neuron SDK 2.21-2.26): `LlamaForSampling` / `MixtralForSampling` constructors and
`from_pretrained`, `to_neuron` (compiles unless `load` pointed it at saved artifacts), `save`, `load`, and
`sample(input_ids, sequence_length, ..., streamer=None, stopping_criteria_list=None, ...)` with the real loop's
streamer protocol (`put` of a (batch, 1) token tensor per step, then `end`). Instead of NeuronCores it runs the
checkpoint with transformers on the CPU, so greedy output can be compared with the hf backend's.

Every call is appended to CALLS so a test can see, for instance, that serving never compiled.
"""

__version__ = "0.13.standin"

CALLS: list[tuple] = []
