"""FusionConfig: defaults, mapping round trip, errors naming the key."""

import json

import pytest

from tracklayer.fusion.config import FusionConfig


def test_default_lateness_and_report_interval_match_design():
    cfg = FusionConfig()
    assert cfg.allowed_lateness_s == 6.0  # DESIGN §6: covers latency_max_s = 5 s
    assert cfg.report_interval_s == 1.0  # DESIGN §6: at most one report per second


def test_mapping_round_trip_is_identity_and_json_serialisable():
    cfg = FusionConfig().replace(gate_probability=0.999, confirm_m=3)
    text = json.dumps(cfg.to_mapping())
    assert FusionConfig.from_mapping(json.loads(text)) == cfg


def test_unknown_key_is_named_in_the_error():
    with pytest.raises(ValueError, match="^gate_probabilty: unknown"):
        FusionConfig.from_mapping({"gate_probabilty": 0.99})


def test_out_of_range_value_is_named_in_the_error():
    with pytest.raises(ValueError, match="^report_interval_s: must be > 0"):
        FusionConfig.from_mapping({"report_interval_s": 0})
    with pytest.raises(ValueError, match="^gate_probability"):
        FusionConfig.from_mapping({"gate_probability": 1.5})


def test_wrong_type_is_named_in_the_error():
    with pytest.raises(ValueError, match="^confirm_m: expected an integer"):
        FusionConfig.from_mapping({"confirm_m": 2.5})
    with pytest.raises(ValueError, match="^allowed_lateness_s: expected a number"):
        FusionConfig.from_mapping({"allowed_lateness_s": "6"})


def test_integer_valued_numbers_are_accepted_for_float_and_int_settings():
    cfg = FusionConfig.from_mapping({"allowed_lateness_s": 3, "confirm_n": 8.0})
    assert cfg.allowed_lateness_s == 3.0 and isinstance(cfg.allowed_lateness_s, float)
    assert cfg.confirm_n == 8 and isinstance(cfg.confirm_n, int)
