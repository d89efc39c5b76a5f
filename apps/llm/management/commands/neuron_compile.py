"""`python manage.py neuron_compile --model DIR --out DIR --tp-degree N ...`: compile a model for Neuron once.

Serving (REPLY_BACKEND=neuron) loads what this saves and refuses to compile on the request path, so run this on
a host of the serving type (same NeuronCore count) with the same options as the LLM_NEURON_* settings. Defaults
come from those settings.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.llm.backends import neuron_options
from apps.llm.errors import BackendUnavailable


def _int_list(value: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(v) for v in value.split(",") if v.strip()}))
    except ValueError:
        raise CommandError(f"{value!r}: expected integers separated by commas") from None


class Command(BaseCommand):
    help = "Compile a Llama/Mixtral (KARAKURI LM) directory for AWS Neuron and save the artifacts."

    def add_arguments(self, parser):
        defaults = neuron_options()
        parser.add_argument("--model", default=settings.LLM_MODEL_DIR, help="Model directory (LLM_MODEL_DIR).")
        parser.add_argument("--out", default=settings.LLM_NEURON_ARTIFACT_DIR, help="Artifact directory to write.")
        parser.add_argument("--tp-degree", type=int, default=defaults.tp_degree, help="NeuronCores to shard over.")
        parser.add_argument("--amp", choices=("bf16", "f16", "f32"), default=defaults.amp)
        parser.add_argument(
            "--sequence-buckets",
            default=",".join(map(str, defaults.sequence_buckets)),
            help="Total sequence lengths to compile for, e.g. 1024,2048,4096.",
        )
        parser.add_argument(
            "--context-buckets",
            default=",".join(map(str, defaults.context_buckets)),
            help="Prompt lengths for context encoding; empty for half of each sequence bucket.",
        )
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)

    def handle(self, *args, model, out, tp_degree, amp, sequence_buckets, context_buckets, batch_size, **options):
        from apps.llm.backends.neuron import NeuronOptions, neuron_compile

        if not model:
            raise CommandError("--model is required (or set LLM_MODEL_DIR)")
        if tp_degree < 1 or batch_size < 1:
            raise CommandError("--tp-degree and --batch-size must be at least 1")
        compile_options = NeuronOptions(
            tp_degree=tp_degree,
            amp=amp,
            sequence_buckets=_int_list(sequence_buckets),
            context_buckets=_int_list(context_buckets),
            batch_size=batch_size,
        )
        if not compile_options.sequence_buckets:
            raise CommandError("--sequence-buckets needs at least one length")
        self.stdout.write(f"Compiling {model} for Neuron with {compile_options} ...")
        try:
            out_dir = neuron_compile(model_dir=Path(model), out_dir=Path(out), options=compile_options)
        except BackendUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Saved compiled artifacts to {out_dir}"))
        if compile_options != neuron_options():
            self.stdout.write(
                "These options differ from the LLM_NEURON_* settings; set them to match before serving, or the "
                "neuron backend will refuse to start."
            )
