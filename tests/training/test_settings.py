"""The training settings fail loudly on a bad value, naming the variable."""

from __future__ import annotations

import pytest

from tests.test_settings import start_django


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRAINING_PII_KINDS", "passport"),
        ("TRAINING_VALIDATION_RATIO", "0.9"),
        ("TRAINING_NEAR_DUPLICATE_SIMILARITY", "0.1"),
        ("TRAINING_CLAIM_TIMEOUT", "soon"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path, name, value):
    result = start_django(KARAKURI_DATA_DIR=str(tmp_path), **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.strip().splitlines()[-1]


def test_pii_kinds_can_be_narrowed_or_turned_off():
    from apps.training.config import pii_kinds_setting

    assert pii_kinds_setting("X", "phone, email") == ("email", "phone")
    assert pii_kinds_setting("X", "none") == ()
