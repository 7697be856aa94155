"""Scenario files: built-ins, defaults, TLE constellations and every bad-input case."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracklayer.sensors.scenario import (
    ScenarioError,
    SensorSpec,
    list_scenarios,
    load_scenario,
    parse_scenario,
)

BASE = """\
name = "t"
epoch = "2026-01-01T00:00:00Z"
duration_s = 600
[constellation]
[sensor]
[[launch]]
id = "M1"
missile = "icbm"
site = { lat_deg = 40.0, lon_deg = 100.0 }
target = { lat_deg = 47.6, lon_deg = -122.3 }
"""

# A real-format TLE (ISS, epoch 2026-01-01) for the TLE path
ISS = """ISS (ZARYA)
1 25544U 98067A   26001.00000000  .00016717  00000-0  10270-3 0  9005
2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579 12345
"""


def test_builtins_are_listed_with_one_line_descriptions():
    rows = dict(list_scenarios())
    assert {"single-icbm", "salvo", "clutter", "dropout"} <= set(rows)
    assert all(d and "\n" not in d for d in rows.values())


@pytest.mark.parametrize("name", ["single-icbm", "salvo", "clutter", "dropout"])
def test_builtins_share_the_epoch_fit_2700_s_and_have_no_bias(name):
    s = load_scenario(name)
    assert s.epoch_ns == 1767225600 * 10**9  # 2026-01-01T00:00:00Z
    assert s.duration_s <= 2700
    assert s.sensor.bias_sigma_urad == 0


def test_salvo_is_24_missiles_from_3_sites_within_a_minute():
    s = load_scenario("salvo")
    launches = [la.time_s + i * la.spacing_s for la in s.launches for i in range(la.count)]
    assert len(launches) == 24
    assert len({(la.site_lat_deg, la.site_lon_deg) for la in s.launches}) == 3
    assert max(launches) - min(launches) <= 60.0


@pytest.mark.parametrize("name", ["raid", "raid-proliferated"])
def test_raids_are_1000_mixed_missiles_from_8_or_more_sites_within_a_minute(name):
    s = load_scenario(name)
    launches = [la.time_s + i * la.spacing_s for la in s.launches for i in range(la.count)]
    assert len(launches) == 1000
    assert len({(la.site_lat_deg, la.site_lon_deg) for la in s.launches}) >= 8
    assert max(launches) - min(launches) <= 60.0
    assert {la.missile for la in s.launches} >= {"icbm", "irbm", "mrbm", "hgv"}
    assert max(la.count for la in s.launches) >= 100  # many along one path: closely spaced
    layer = s.constellation
    if name == "raid":
        assert layer.planes * layer.satellites_per_plane == 28
    else:
        assert layer.planes >= 10 and layer.planes * layer.satellites_per_plane >= 120


def test_omitted_keys_take_the_design_defaults():
    s = parse_scenario(BASE, "t.toml")
    assert s.sensor == SensorSpec()
    assert s.seed == 1 and s.description == ""
    c = s.constellation
    assert (c.kind, c.altitude_km, c.inclination_deg, c.planes) == ("walker", 1000, 80, 4)
    assert (c.satellites_per_plane, c.phasing) == (7, 1)
    assert s.launches[0].count == 1 and s.launches[0].time_s == 0.0
    assert s.sensor_ids()[:2] == ["sat-1-1", "sat-1-2"] and len(s.sensor_ids()) == 28


def test_object_ids_are_launch_id_and_two_digit_index():
    text = BASE.replace('id = "M1"', 'id = "M1"\ncount = 3\nspacing_s = 5.0')
    assert parse_scenario(text, "t.toml").launches[0].object_ids() == ["M1-01", "M1-02", "M1-03"]


def test_tle_constellation_is_read_relative_to_the_scenario_file(tmp_path: Path):
    (tmp_path / "sats").mkdir()
    (tmp_path / "sats" / "iss.tle").write_text(ISS)
    text = BASE.replace(
        "[constellation]", '[constellation]\nkind = "tle"\ntle_file = "sats/iss.tle"'
    )
    (tmp_path / "s.toml").write_text(text)
    s = load_scenario(str(tmp_path / "s.toml"))
    assert s.sensor_ids() == ["ISS (ZARYA)"]


def _error(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.toml")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("bad.toml: ")
    return msg


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        (BASE.replace('name = "t"\n', ""), "name", "missing"),
        (BASE.replace("duration_s = 600\n", ""), "duration_s", "missing"),
        (BASE.replace('epoch = "2026-01-01T00:00:00Z"\n', ""), "epoch", "missing"),
        (BASE.replace("[constellation]\n", ""), "constellation", "missing"),
        (BASE.split("[[launch]]")[0], "launch", "at least one"),
        (BASE.replace('missile = "icbm"\n', ""), "launch[0].missile", "missing"),
        (BASE + "colour = 1\n", "launch[0].colour", "allowed here"),
        (BASE.replace("[sensor]", "[sensor]\nfov_deg = 3"), "sensor.fov_deg", "allowed here"),
        ("extra = 1\n" + BASE, "extra", "allowed here"),
        (BASE.replace("duration_s = 600", 'duration_s = "long"'), "duration_s", "number"),
        (BASE.replace("[sensor]", "[sensor]\nhotspot_count = 2.5"), "sensor.hotspot_count",
         "integer"),
        (BASE.replace("[sensor]", "[sensor]\npd_boost = true"), "sensor.pd_boost", "number"),
        (BASE.replace("[sensor]", "[sensor]\nangular_sigma_urad = -1"),
         "sensor.angular_sigma_urad", "> 0"),
        (BASE.replace("[sensor]", "[sensor]\npd_midcourse = 1.2"), "sensor.pd_midcourse",
         "<= 1"),
        (BASE.replace("[sensor]", "[sensor]\nframe_phase = 'sometimes'"), "sensor.frame_phase",
         "'random', 'aligned'"),
        (BASE.replace("[constellation]", "[constellation]\naltitude_km = 150"),
         "constellation.altitude_km", ">= 200"),
        (BASE.replace('id = "M1"', 'id = "M1"\ncount = 4'), "launch[0].spacing_s",
         "count > 1"),
        (BASE.replace('"icbm"', '"cruise"'), "launch[0].missile", "'icbm'"),
        (BASE.replace("lat_deg = 47.6, lon_deg = -122.3", "lat_deg = 41.0, lon_deg = 101.0"),
         "launch[0].target", "5500-13000 km"),
        (BASE.replace("lat_deg = 40.0, lon_deg = 100.0", "lat_deg = 95.0, lon_deg = 100.0"),
         "launch[0].site.lat_deg", "<= 90"),
        (BASE.replace("[constellation]", '[constellation]\nkind = "tle"'),
         "constellation.tle_file", "missing"),
        (BASE + '[[outage]]\nsensor_id = "sat-9-9"\nstart_s = 1\nduration_s = 5\n',
         "outage[0].sensor_id", "unknown satellite"),
        (BASE.replace('epoch = "2026-01-01T00:00:00Z"', 'epoch = "yesterday"'), "epoch",
         "ISO 8601"),
    ],
)  # fmt: skip
def test_bad_scenario_gets_one_line_naming_file_key_and_what_is_allowed(text, key, allowed):
    msg = _error(text)
    assert f": {key}: " in msg
    assert allowed in msg


def test_invalid_toml_names_the_file():
    assert "not valid TOML" in _error("name = \n")


def test_missing_file_names_it_and_the_builtins():
    with pytest.raises(ScenarioError, match="no such file.*single-icbm"):
        load_scenario("/nonexistent/x.toml")


def test_a_directory_is_named_as_such_not_as_missing(tmp_path: Path):
    with pytest.raises(ScenarioError, match="is a directory, not a scenario file"):
        load_scenario(str(tmp_path))


def test_unreadable_tle_file_names_the_key(tmp_path: Path):
    text = BASE.replace("[constellation]", '[constellation]\nkind = "tle"\ntle_file = "no.tle"')
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ScenarioError, match="constellation.tle_file: cannot read"):
        load_scenario(str(tmp_path / "s.toml"))


def test_malformed_tle_names_the_key_and_line(tmp_path: Path):
    (tmp_path / "x.tle").write_text("SAT\n1 garbage\n")
    text = BASE.replace("[constellation]", '[constellation]\nkind = "tle"\ntle_file = "x.tle"')
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ScenarioError, match="constellation.tle_file: .*line"):
        load_scenario(str(tmp_path / "s.toml"))
