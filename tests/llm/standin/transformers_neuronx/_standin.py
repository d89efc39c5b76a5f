"""The shared body of the stand-in sampling models (see the package docstring)."""

import hashlib
import json
import os

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from transformers_neuronx import CALLS
from transformers_neuronx.stopping_criteria import StoppingCriteriaList


class StandInSamplingModel:
    def __init__(
        self,
        config,
        *,
        n_positions=2048,
        batch_size=1,
        amp="f32",
        tp_degree=2,
        context_length_estimate=None,
        context_unroll=None,
        unroll=None,
        neuron_config=None,
        **kwargs,
    ):
        self.config = config
        self.neuron_config = neuron_config
        self.amp = amp
        self.tp_degree = tp_degree
        self.token_buckets = sorted(n_positions) if isinstance(n_positions, list) else [n_positions]
        if isinstance(batch_size, int):
            self.batch_sizes = [batch_size]
        elif isinstance(batch_size, list):
            self.batch_sizes = sorted(batch_size)
        else:
            raise TypeError("batch_size must be list of ints or int type")
        self.context_buckets = context_length_estimate or [b // 2 for b in self.token_buckets]
        self.context_pre_hook = None
        self.context_hook = None
        self._checkpoint = None
        self._hf = None
        self._neff = None
        CALLS.append(
            (
                "init",
                type(self).__name__,
                {
                    "n_positions": n_positions,
                    "batch_size": batch_size,
                    "amp": amp,
                    "tp_degree": tp_degree,
                    "context_length_estimate": context_length_estimate,
                },
            )
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_path, *model_args, **kwargs):
        config = AutoConfig.from_pretrained(pretrained_model_path)
        model = cls(config, *model_args, **kwargs)
        model._checkpoint = pretrained_model_path
        return model

    # -- top level api, as in transformers_neuronx.base.NeuronModelBase --

    def save(self, directory):
        if self._neff is None:
            raise AssertionError("serialization is not enabled for this model")
        os.makedirs(directory, exist_ok=True)
        for name, content in self._neff.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(content)
        CALLS.append(("save", directory))

    def load(self, directory):
        self._compiled_artifacts_directory = directory
        CALLS.append(("load", directory))

    def compile(self, parallel_degree=None):
        CALLS.append(("compile", type(self).__name__))
        key = json.dumps([self.tp_degree, self.amp, self.token_buckets, self.batch_sizes]).encode()
        digest = hashlib.sha256(key).hexdigest()[:16]
        self._neff = {f"graph-{bucket}.neff": digest for bucket in self.token_buckets}

    def setup(self):
        pass

    def load_weights(self):
        self._hf = AutoModelForCausalLM.from_pretrained(self._checkpoint, local_files_only=True)
        self._hf.eval()

    def to_neuron(self):
        self.load_weights()
        if hasattr(self, "_compiled_artifacts_directory"):
            directory = self._compiled_artifacts_directory
            if not os.path.isdir(directory):
                raise FileNotFoundError(f"Did not find directory: {directory}.")
            names = [n for n in os.listdir(directory) if n.endswith(".neff")]
            if not names:
                raise FileNotFoundError(f"no compiled graphs in {directory}")
            self._neff = {n: open(os.path.join(directory, n)).read() for n in names}
            CALLS.append(("load_artifacts", directory))
        else:
            self.compile()
        self.setup()

    def reset(self):
        pass

    # -- sampling, following transformers_neuronx.sampling.sample_llama / sample_loop_llama --

    @torch.no_grad()
    def sample(
        self,
        input_ids,
        sequence_length,
        start_ids=None,
        top_k=50,
        top_p=1.0,
        eos_token_override=None,
        temperature=1.0,
        streamer=None,
        stopping_criteria_list=None,
        no_repeat_ngram_size=None,
    ):
        if self._hf is None:
            raise RuntimeError("call to_neuron() first")
        batch_size, context_length = input_ids.shape
        if batch_size not in self.batch_sizes:
            raise ValueError(
                f"Model not compiled for batch_size : {batch_size}. "
                f"Acceptable batch_size is one of the following {self.batch_sizes}"
            )
        if sequence_length > self.token_buckets[-1]:
            sequence_length = self.token_buckets[-1]
        eos_token_id = self.config.eos_token_id if eos_token_override is None else eos_token_override
        stopping_criteria_list = (
            stopping_criteria_list if stopping_criteria_list is not None else StoppingCriteriaList()
        )
        CALLS.append(("sample", context_length, sequence_length))
        out = self._hf(input_ids=input_ids, use_cache=True)
        cache = out.past_key_values
        next_token_scores = out.logits[:, -1, :]
        done_flags = torch.full((batch_size, 1), False)
        tokens = [input_ids]
        steps = 0
        for current_length in range(context_length, sequence_length):
            if temperature != 1.0:
                next_token_scores = next_token_scores / temperature
            top_values, top_indices = torch.topk(next_token_scores, top_k)
            probs = torch.nn.functional.softmax(top_values, dim=-1, dtype=torch.float32)
            inputs_in_topk = (
                torch.multinomial(probs, num_samples=1, replacement=True)
                if top_k > 1
                else (torch.zeros((batch_size, 1), dtype=torch.long))
            )
            inputs = torch.gather(top_indices, 1, inputs_in_topk)
            done_flags = torch.logical_or(done_flags, inputs == eos_token_id)
            token = torch.where(done_flags.eq(True), eos_token_id, inputs)
            tokens.append(token)
            steps += 1
            if streamer:
                streamer.put(token)
            if current_length + 1 >= sequence_length or done_flags.all():
                break
            if stopping_criteria_list(input_ids, probs):
                break
            out = self._hf(input_ids=inputs, cache=cache, use_cache=True)
            cache = out.past_key_values
            next_token_scores = out.logits[:, -1, :]
        CALLS.append(("sample_steps", steps))
        if streamer:
            streamer.end()
        return torch.cat(tokens, dim=-1)
