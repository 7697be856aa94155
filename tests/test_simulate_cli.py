"""`tracklayer scenarios` and `tracklayer simulate`: recordings, determinism, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracklayer.services.cli import main
from tracklayer.services.wire.recording import (
    TOPIC_DETECTION_TRUTH,
    TOPIC_FRAMES,
    TOPIC_TRUTH,
    RecordingReader,
)

TRACKLAYER = str(Path(sys.executable).parent / "tracklayer")  # the installed console script
SHORT = 30.0  # s: enough for every satellite to look 30 times


def test_scenarios_lists_each_builtin_on_one_line(capsys):
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [ln.split()[0] for ln in lines]
    assert names == [
        "biased",
        "clutter",
        "dropout",
        "glide",
        "raid",
        "raid-proliferated",
        "salvo",
        "single-icbm",
    ]
    assert all(len(ln.split(maxsplit=1)) == 2 for ln in lines)


def test_simulate_records_frames_truth_detection_truth_and_metadata(simulated_mcap):
    path = simulated_mcap("single-icbm", duration_s=SHORT)
    with RecordingReader(path) as r:
        meta = r.metadata
        assert meta["scenario"] == "single-icbm" and meta["seed"] == "1"
        assert len(meta["sensor_ids"].split(",")) == 28
        assert all(r.has_topic(t) for t in (TOPIC_FRAMES, TOPIC_TRUTH, TOPIC_DETECTION_TRUTH))
        frames = list(r.frames())
        truths = list(r.detection_truth())
    assert len(frames) == 28 * int(SHORT)
    log_times = [t for t, _ in frames]
    assert log_times == sorted(log_times)  # file order = delivery order
    assert all(t >= f.time_ns for t, f in frames)  # delivered after measurement
    assert [(d.sensor_id, d.sequence) for _, d in truths] == [
        (f.sensor_id, f.sequence) for _, f in frames
    ]


def test_same_scenario_and_seed_give_a_byte_identical_file(simulated_mcap, tmp_path: Path):
    first = simulated_mcap("clutter", duration_s=SHORT)
    again = tmp_path / "again.mcap"
    # in another process (fresh flight solutions, another PYTHONHASHSEED)
    env = {**os.environ, "PYTHONHASHSEED": "4321"}
    argv = [TRACKLAYER, "simulate", "clutter", "--out", str(again), "--duration", str(SHORT)]
    assert subprocess.run(argv, env=env, capture_output=True).returncode == 0
    assert again.read_bytes() == first.read_bytes()
    other = tmp_path / "other.mcap"
    argv = ["simulate", "clutter", "--out", str(other), "--duration", str(SHORT), "--seed", "7"]
    assert main(argv) == 0
    assert other.read_bytes() != first.read_bytes()


def test_summary_names_objects_satellites_frames_detections_clutter_and_time(
    tmp_path: Path, capsys
):
    out = tmp_path / "s.mcap"
    assert main(["simulate", "single-icbm", "--out", str(out), "--duration", "5"]) == 0
    text = capsys.readouterr().out
    for word in ("objects 1", "satellites 28", "frames 140", "detections", "clutter", "taken"):
        assert word in text


BAD = """\
name = "bad"
epoch = "2026-01-01T00:00:00Z"
duration_s = 100
[constellation]
[sensor]
pd_boost = 1.5
[[launch]]
id = "M1"
missile = "icbm"
site = { lat_deg = 40.0, lon_deg = 100.0 }
target = { lat_deg = 47.6, lon_deg = -122.3 }
"""


def test_bad_scenario_exits_2_with_one_line_and_leaves_no_file(tmp_path: Path):
    scenario = tmp_path / "bad.toml"
    scenario.write_text(BAD)
    out = tmp_path / "out.mcap"
    proc = subprocess.run(
        [TRACKLAYER, "simulate", str(scenario), "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(scenario) in lines[0] and "sensor.pd_boost" in lines[0] and "<= 1" in lines[0]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [scenario]  # no temporary file left either


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["simulate", "no-such-scenario", "--out", "x.mcap"], "no such file or built-in"),
        (["simulate", "single-icbm", "--out", "x.mcap", "--duration", "-3"], "--duration"),
        (["simulate", "single-icbm", "--out", "x.mcap", "--seed", "-1"], "--seed"),
        # the file asked for, not the temporary one it is written under
        (["simulate", "single-icbm", "--out", "no-dir/x.mcap"], "no-dir/x.mcap: --out directory"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "x.mcap").exists()


DECAYED_TLE = """OLDSAT
1 25544U 98067A   00001.00000000  .00016717  00000-0  10270-2 0  9005
2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579 12345
"""


def test_tle_that_sgp4_cannot_propagate_to_the_epoch_exits_2_and_leaves_no_file(
    tmp_path: Path, capsys
):
    (tmp_path / "old.tle").write_text(DECAYED_TLE)
    text = BAD.replace("pd_boost = 1.5\n", "").replace(
        "[constellation]", '[constellation]\nkind = "tle"\ntle_file = "old.tle"'
    )
    (tmp_path / "s.toml").write_text(text)
    out = tmp_path / "out.mcap"
    assert main(["simulate", str(tmp_path / "s.toml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "OLDSAT" in err and "SGP4" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.tle", "s.toml"]
