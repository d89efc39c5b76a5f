import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.llm.attributes import (
    ATTRIBUTE_NAMES,
    BUILTIN_DEFAULTS,
    InvalidAttributes,
    deployment_defaults,
    format_attributes,
    parse_attributes,
    resolve_attributes,
    validate_attributes,
)
from apps.llm.config import attributes_setting, int_list_setting


def test_it_has_the_nine_steerlm_attributes_with_karakuri_defaults():
    assert ATTRIBUTE_NAMES == (
        "helpfulness",
        "correctness",
        "coherence",
        "complexity",
        "verbosity",
        "quality",
        "toxicity",
        "humor",
        "creativity",
    )
    assert [BUILTIN_DEFAULTS[n] for n in ATTRIBUTE_NAMES] == [4, 4, 4, 4, 4, 4, 0, 0, 0]


def test_it_formats_the_attr_block_in_canonical_order():
    assert format_attributes({"verbosity": 2}) == (
        "helpfulness: 4 correctness: 4 coherence: 4 complexity: 4 verbosity: 2 quality: 4 toxicity: 0 humor: 0 "
        "creativity: 0"
    )


def test_it_parses_a_deployment_spec():
    assert parse_attributes("verbosity=2, humor=1") == {"verbosity": 2, "humor": 1}
    assert parse_attributes("verbosity: 2 complexity: 3") == {"complexity": 3, "verbosity": 2}
    assert parse_attributes("") == {}


@pytest.mark.parametrize(
    "spec",
    [
        "verbosity=5",
        "verbosity=-1",
        "verbosity=two",
        "verbosity=2.5",
        "politeness=4",
        "verbosity",
        "verbosity=2 verbosity=3",
    ],
)
def test_it_rejects_bad_specs(spec):
    with pytest.raises(InvalidAttributes):
        parse_attributes(spec)


def test_it_rejects_booleans_and_fractions():
    with pytest.raises(InvalidAttributes):
        validate_attributes({"humor": True})
    with pytest.raises(InvalidAttributes):
        validate_attributes({"humor": 1.5})
    assert validate_attributes({"humor": 1.0, "toxicity": "0"}) == {"toxicity": 0, "humor": 1}


def test_overrides_beat_deployment_defaults_beat_builtin():
    resolved = resolve_attributes({"humor": 1}, defaults={"verbosity": 2, "humor": 3})
    assert resolved["verbosity"] == 2
    assert resolved["humor"] == 1
    assert resolved["helpfulness"] == 4
    assert list(resolved) == list(ATTRIBUTE_NAMES)


def test_deployment_defaults_come_from_settings(settings):
    settings.LLM_ATTRIBUTES = {"verbosity": 2}
    assert deployment_defaults() == {"verbosity": 2}
    assert resolve_attributes()["verbosity"] == 2


def test_the_setting_parser_names_the_variable():
    with pytest.raises(ImproperlyConfigured, match="LLM_ATTRIBUTES"):
        attributes_setting("LLM_ATTRIBUTES", "verbosity=7")
    assert attributes_setting("LLM_ATTRIBUTES", "verbosity=2") == {"verbosity": 2}


def test_the_bucket_parser_sorts_and_names_the_variable():
    assert int_list_setting("LLM_NEURON_SEQUENCE_BUCKETS", "4096, 1024,2048") == [1024, 2048, 4096]
    with pytest.raises(ImproperlyConfigured, match="LLM_NEURON_SEQUENCE_BUCKETS"):
        int_list_setting("LLM_NEURON_SEQUENCE_BUCKETS", "1024,big")
    with pytest.raises(ImproperlyConfigured, match="LLM_NEURON_SEQUENCE_BUCKETS"):
        int_list_setting("LLM_NEURON_SEQUENCE_BUCKETS", "64", minimum=128)
