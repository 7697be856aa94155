"""``tracklayer demo`` end to end as a user runs it: a subprocess that starts the
store, the fusion service, the sensors and the simulation as processes of its own.

A short scenario keeps it quick: one SRBM (launch at 10 s, ~60 s boost), 120 s of
scenario at 40x, so about 3 s of streaming. "No process left behind" is checked
by looking for any process whose command line names this test's directory: every
child of the demo names it (scenario file, database, journal or recording).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRBM = """\
name = "demo-test-srbm"
description = "One SRBM over ~280 km, default 28-satellite layer"
epoch = "2026-01-01T00:00:00Z"
duration_s = 120
seed = 3

[constellation]
kind = "walker"
altitude_km = 1000
inclination_deg = 80
planes = 4
satellites_per_plane = 7
phasing = 1

[sensor]
frame_rate_hz = 1.0
clutter_per_frame = 1

[[launch]]
id = "M1"
missile = "srbm"
site = { lat_deg = 40.0, lon_deg = 100.0 }
target = { lat_deg = 42.0, lon_deg = 102.0 }
time_s = 10.0
"""


def processes_naming(text: str) -> list[str]:
    """Command lines of the running processes (not zombies) whose argv contains ``text``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(f"{pid}: {cmd}")
    return found


def demo_cmd(tmp_path: Path, *extra: str) -> list[str]:
    scenario = tmp_path / "srbm.toml"
    scenario.write_text(SRBM)
    return [
        sys.executable,
        "-m",
        "tracklayer.services.cli",
        "demo",
        str(scenario),
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One complete demo run: (completed process, its directory)."""
    tmp = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        demo_cmd(tmp, "--speed", "40"), capture_output=True, text=True, timeout=240
    )
    return proc, tmp


def test_demo_exits_zero_and_prints_the_evaluation_summary(demo_run):
    proc, _ = demo_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for figure in ("GOSPA mean / max", "position RMSE boost", "impact error median"):
        assert figure in proc.stdout


def test_demo_prints_the_live_map_address_and_writes_scene_czml(demo_run):
    proc, tmp = demo_run
    m = re.search(r"^  live map (http://127\.0\.0\.1:\d+/)", proc.stdout, re.M)
    assert m, proc.stdout[-3000:]
    assert (tmp / "out" / "report" / "scene.czml").stat().st_size > 1000


def test_demo_writes_the_plots_it_names_and_metrics(demo_run):
    proc, tmp = demo_run
    plots = re.findall(r"^plot:\s+(\S+)$", proc.stdout, re.M)
    assert plots, proc.stdout[-3000:]
    for p in plots:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((tmp / "out" / "report" / "metrics.json").read_text())
    # The one SRBM is seen in stereo by the 28-satellite layer through its boost:
    # the live services must have tracked it (nothing LATE or lost on the way).
    assert metrics["truth"]["objects_never_tracked"] == []


def test_demo_leaves_no_process_behind(demo_run):
    _, tmp = demo_run
    assert processes_naming(str(tmp)) == []


def test_demo_with_workers_runs_the_scale_out_chain_and_scores_exactly_as_embedded(
    demo_run, tmp_path
):
    """``--workers 2``: broker, front door (fusion --nats) and two workers; one shard
    reports what the embedded service reports, so the evaluation is the same."""
    pytest.importorskip("nats")
    proc = subprocess.run(
        demo_cmd(tmp_path, "--speed", "40", "--workers", "2", "--no-plots"),
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^  broker   nats://127\.0\.0\.1:\d+$", proc.stdout, re.M)
    assert "worker-2 pid" in proc.stdout
    scaled = json.loads((tmp_path / "out" / "report" / "metrics.json").read_text())
    embedded = json.loads((demo_run[1] / "out" / "report" / "metrics.json").read_text())
    assert scaled["truth"] == embedded["truth"]
    assert processes_naming(str(tmp_path)) == []


def test_demo_with_four_shards_on_two_workers_tracks_across_the_border(tmp_path):
    """``--workers 2 --shards 4`` on the two-border scene (tests/data/scaleout): both
    missiles are tracked to the end with no id switch across their hand-overs, no false
    track, and no process is left behind."""
    pytest.importorskip("nats")
    scene = Path(__file__).parent / "data" / "scaleout" / "cross.toml"
    argv = demo_cmd(tmp_path, "--speed", "40", "--workers", "2", "--shards", "4", "--no-plots")
    argv[argv.index("demo") + 1] = str(scene)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    truth = json.loads((tmp_path / "out" / "report" / "metrics.json").read_text())["truth"]
    assert truth["n_objects"] == 2 and truth["id_switches"] == 0
    assert truth["completeness"] > 0.98 and truth["false_track_share"] == 0.0
    assert processes_naming(str(tmp_path)) == []


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_every_child_of_the_demo(tmp_path, sig, status):
    proc = subprocess.Popen(
        demo_cmd(tmp_path, "--speed", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = ""
        deadline = time.monotonic() + 90
        while "satellites streaming" not in out:  # every child started
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, out
            out += line
        assert len(processes_naming(str(tmp_path))) >= 3  # store, fusion, sensors (+ simulate)
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, out + rest
    assert f"interrupted ({sig.name})" in rest
    assert processes_naming(str(tmp_path)) == []


@pytest.mark.parametrize("chain", [(), ("--workers", "1")], ids=["embedded", "scale-out"])
def test_children_stop_even_when_the_demo_itself_is_killed(tmp_path, chain):
    """SIGKILL gives the demo no chance to clean up; its children ask the kernel
    (PR_SET_PDEATHSIG) for a SIGTERM when it dies, and stop gracefully on it (in the
    scale-out chain also the broker's nats-server, which names this directory too)."""
    if chain:
        pytest.importorskip("nats")
    proc = subprocess.Popen(
        demo_cmd(tmp_path, "--speed", "2", *chain),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = ""
        deadline = time.monotonic() + 90
        while "satellites streaming" not in out:
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, out
            out += line
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 30  # the services' graceful stop takes a few seconds
        while processes_naming(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert processes_naming(str(tmp_path)) == []
