"""Objects launched at the same instant (a raid: many launch tables, many missiles each)
share one truth frame instead of crashing the simulator's delivery heap (issue 13: two
truth frames with equal times compared their payloads, TypeError)."""

from __future__ import annotations

from pathlib import Path

from tracklayer.sensors.scenario import load_scenario
from tracklayer.sensors.simulation import simulate_to_lists

SCENARIO = """
name = "tie"
epoch = "2026-01-01T00:00:00Z"
duration_s = 20
seed = 3

[constellation]
kind = "walker"
altitude_km = 1000
inclination_deg = 80
planes = 2
satellites_per_plane = 3
phasing = 1

[sensor]
frame_rate_hz = 1.0

[[launch]]
id = "A"
missile = "srbm"
site = { lat_deg = 40.0, lon_deg = 100.0 }
target = { lat_deg = 42.0, lon_deg = 100.0 }
time_s = 10.5

[[launch]]
id = "B"
missile = "srbm"
site = { lat_deg = 30.0, lon_deg = 60.0 }
target = { lat_deg = 32.0, lon_deg = 60.0 }
time_s = 10.5

[[launch]]
id = "C"
missile = "srbm"
site = { lat_deg = 20.0, lon_deg = 30.0 }
target = { lat_deg = 22.0, lon_deg = 30.0 }
time_s = 10.5
"""


def test_simultaneous_launches_share_one_truth_frame(tmp_path: Path):
    path = tmp_path / "tie.toml"
    path.write_text(SCENARIO)
    sim = simulate_to_lists(load_scenario(str(path)))
    times = [tf.time_ns for tf in sim.truth]
    assert times == sorted(set(times)), "one truth frame per instant, in time order"
    launch_ns = 1_767_225_610_500_000_000  # 2026-01-01T00:00:10.5Z
    (at_launch,) = [tf for tf in sim.truth if tf.time_ns == launch_ns]
    assert sorted(o.object_id for o in at_launch.objects) == ["A-01", "B-01", "C-01"]
    # and every whole second after it lists all three in flight
    assert sorted(o.object_id for o in sim.truth[-1].objects) == ["A-01", "B-01", "C-01"]
