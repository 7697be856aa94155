"""The glide vehicle in scenarios, the sensor model, recordings and evaluation; bad input.

One 420 s stretch of the built-in ``glide`` (both gliders launched, boosting and gliding)
is simulated to MCAP with the CLI once per module; a second run with ``pd_glide = 0``
checks the detection probability.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tracklayer.fusion.domain import FlightPhase, TrackReport, TrackStatus
from tracklayer.fusion.geodesy import teme_to_geodetic
from tracklayer.sensors.ir_sensor import GLIDE_INTENSITY
from tracklayer.sensors.missile_profiles import GLIDERS
from tracklayer.sensors.scenario import ScenarioError, load_scenario, parse_scenario
from tracklayer.sensors.simulation import build_world, simulate_to_lists
from tracklayer.services.cli import main
from tracklayer.services.wire.convert import truth_from_proto, truth_to_proto
from tracklayer.services.wire.recording import RecordingReader, RecordingWriter

SHORT_S = 420.0
GLIDE_TOML = Path(__file__).parent.parent / "sensors" / "scenarios" / "glide.toml"

HGV_BASE = """\
name = "t"
epoch = "2026-01-01T00:00:00Z"
duration_s = 600
[constellation]
[sensor]
[[launch]]
id = "G1"
missile = "{missile}"
site = {{ lat_deg = 50.0, lon_deg = 60.0 }}
target = {{ lat_deg = {tlat}, lon_deg = {tlon} }}
{extra}
"""


def hgv(extra: str = "", missile: str = "hgv", target=(70.0, 110.0)) -> str:
    return HGV_BASE.format(missile=missile, tlat=target[0], tlon=target[1], extra=extra)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("glide") / "glide.mcap"
    assert main(["simulate", "glide", "--out", str(out), "--duration", str(SHORT_S)]) == 0
    return out


@pytest.fixture(scope="module")
def flights():
    return {f.object_id: f for f in build_world(load_scenario("glide")).flights}


def test_glide_is_built_in_with_two_gliders_one_turning_and_an_mrbm():
    s = load_scenario("glide")
    assert 1500 <= s.duration_s <= 2100 and len(s.sensor_ids()) == 28
    kinds = [(la.missile, (la.site_lat_deg, la.site_lon_deg), len(la.turns)) for la in s.launches]
    assert kinds[0][0] == kinds[1][0] == "hgv" and kinds[0][1] == kinds[1][1]
    assert {kinds[0][2], kinds[1][2]} == {0, 2} and kinds[2][0] == "mrbm"
    banks = [t.bank_deg for la in s.launches for t in la.turns]
    assert banks[0] * banks[1] < 0  # two opposite turns


def test_every_object_lands_before_the_scenario_ends(flights):
    end = load_scenario("glide").epoch_s + load_scenario("glide").duration_s
    assert all(f.impact_time_s < end for f in flights.values())


def test_truth_glide_phase_survives_the_recording_and_the_wire(recording):
    seen: dict[str, set[int]] = {}
    for _, tf in RecordingReader(recording).truth():
        for s in tf.objects:
            seen.setdefault(s.object_id, set()).add(int(s.phase))
        back = truth_from_proto(truth_to_proto(tf))
        assert [s.phase for s in back.objects] == [s.phase for s in tf.objects]
    assert seen["G1-01"] == seen["G2-01"] == {FlightPhase.BOOST, FlightPhase.GLIDE}
    assert FlightPhase.GLIDE not in seen["M1-01"]


def _detections(frames, dtruths, flights, oid):
    """(phase, range-normalised intensity) of every detection of ``oid``."""
    f = flights[oid]
    out = []
    for fr, dt in zip(frames, dtruths, strict=True):
        for k, ident in enumerate(dt.object_ids):
            if ident != oid:
                continue
            t = fr.time_ns / 1e9
            r, _ = f.state_teme(np.array([t]))
            rng = float(np.linalg.norm(r[0] - fr.position))
            out.append((int(f.phase(np.array([t]))[0]), fr.intensity[k] * (rng / 1e6) ** 2))
    return np.array(out)


def test_gliding_body_is_dimmer_than_its_plume_by_the_glide_intensity(recording, flights):
    rd = RecordingReader(recording)
    frames = [f for _, f in rd.frames()]
    dts = [d for _, d in RecordingReader(recording).detection_truth()]
    det = _detections(frames, dts, flights, "G1-01")
    boost = np.median(det[det[:, 0] == FlightPhase.BOOST, 1])
    glide = np.median(det[det[:, 0] == FlightPhase.GLIDE, 1])
    # the per-object factor cancels; scintillation (10%) averages out in the medians
    expected = GLIDE_INTENSITY / GLIDERS["hgv"].booster.brightness
    assert glide / boost == pytest.approx(expected, rel=0.1)
    assert 1.0 < GLIDE_INTENSITY < 20.0  # between a cold body and a plume


def test_pd_glide_is_the_detection_probability_while_gliding(flights):
    text = GLIDE_TOML.read_text().replace("pd_glide = 0.9", "pd_glide = 0.0")
    run = simulate_to_lists(parse_scenario(text, "glide-pd0"), duration_s=SHORT_S)
    det = _detections(run.frames, run.detection_truth, flights, "G2-01")
    assert (det[:, 0] == FlightPhase.BOOST).sum() > 100
    assert (det[:, 0] == FlightPhase.GLIDE).sum() == 0


def _reports_on_truth(recording: Path) -> list[TrackReport]:
    """A perfect track per object (50 m off), reported at every truth sample."""
    out = []
    rev: dict[str, int] = {}
    for _, tf in RecordingReader(recording).truth():
        for s in tf.objects:
            n = rev[s.object_id] = rev.get(s.object_id, 0) + 1
            pos = s.position + np.array([50.0, 0.0, 0.0])
            lat, lon, alt = teme_to_geodetic(pos, tf.time_ns / 1e9)
            out.append(TrackReport(
                track_id=f"fusion-{s.object_id}", revision=n, status=TrackStatus.CONFIRMED,
                time_ns=tf.time_ns, position=pos, velocity=s.velocity,
                covariance=np.diag([100.0**2] * 3 + [1.0] * 3), latitude_deg=float(lat),
                longitude_deg=float(lon), altitude_m=float(alt), phase=s.phase, impact=None,
                launch=None, sensor_ids=("sat-1-1", "sat-2-1"), update_count=n,
            ))  # fmt: skip
    return out


def test_evaluate_runs_on_glide_truth(recording, tmp_path):
    tracked = tmp_path / "tracked.mcap"
    reader = RecordingReader(recording)
    with RecordingWriter(tracked, metadata=reader.metadata) as w:
        for _, tf in RecordingReader(recording).truth():
            w.write_truth(tf, tf.time_ns)
        frames = RecordingReader(recording).frames()
        for (t, fr), (_, dt) in zip(frames, RecordingReader(recording).detection_truth(),
                                    strict=True):  # fmt: skip
            w.write_frame(fr, t)
            w.write_detection_truth(dt, t)
        for r in _reports_on_truth(recording):
            w.write_track(r, r.time_ns)
    out = tmp_path / "report"
    assert main(["evaluate", str(tracked), "--report", str(out), "--no-plots"]) == 0
    m = json.loads((out / "metrics.json").read_text())["truth"]
    assert m["phase_agreement_share"] == pytest.approx(1.0)
    assert m["position_rmse_m"]["all"] == pytest.approx(50.0, rel=1e-3)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        (hgv("turns = 3"), "launch[0].turns", "array of tables"),
        (
            hgv("turns = [{ at_s = 400.0, duration_s = 60.0 }]"),
            "launch[0].turns[0].bank_deg",
            "missing required key",
        ),
        (
            hgv("turns = [{ at_s = 400.0, bank_deg = 75.0, duration_s = 60.0 }]"),
            "launch[0].turns[0].bank_deg",
            ">= -70 and <= 70",
        ),
        (
            hgv("turns = [{ at_s = -1.0, bank_deg = 45.0, duration_s = 60.0 }]"),
            "launch[0].turns[0].at_s",
            ">= 0",
        ),
        (
            hgv("turns = [{ at_s = 400.0, bank_deg = 45.0, duration_s = 0.0 }]"),
            "launch[0].turns[0].duration_s",
            "> 0",
        ),
        (
            hgv("turns = [{ at_s = 400.0, bank = 45.0, duration_s = 60.0 }]"),
            "launch[0].turns[0].bank",
            "unknown key",
        ),
        (
            hgv(
                "turns = [{ at_s = 400.0, bank_deg = 45.0, duration_s = 60.0 },"
                " { at_s = 450.0, bank_deg = -45.0, duration_s = 60.0 }]"
            ),
            "launch[0].turns[1].at_s",
            "not overlapping",
        ),
        (
            hgv(
                "turns = [{ at_s = 400.0, bank_deg = 45.0, duration_s = 60.0 }]",
                missile="mrbm",
                target=(60.0, 85.0),
            ),
            "launch[0].turns",
            "only allowed for a glide vehicle",
        ),
        (hgv(target=(-30.0, -60.0)), "launch[0].target", "outside the hgv reach"),
    ],
)
def test_bad_turns_and_targets_name_the_key(text, key, fragment):
    with pytest.raises(ScenarioError) as e:
        parse_scenario(text, "s.toml")
    msg = str(e.value)
    assert "\n" not in msg and f"s.toml: {key}: " in msg and fragment in msg


def test_turn_outside_the_glide_exits_2_with_one_line_naming_it(tmp_path, capsys):
    path = tmp_path / "early.toml"
    path.write_text(hgv("turns = [{ at_s = 30.0, bank_deg = 45.0, duration_s = 60.0 }]"))
    out = tmp_path / "out.mcap"
    assert main(["simulate", str(path), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "launch[0].turns[0].at_s" in lines[0]
    assert "while the vehicle glides" in lines[0]
    assert not out.exists()


def test_glide_turn_times_are_seconds_after_each_launch(flights):
    g2 = flights["G2-01"].trajectory
    assert [t.at_s for t in g2.turns] == [420.0, 700.0]
    assert [round(math.degrees(t.bank_rad)) for t in g2.turns] == [50, -50]
    assert g2.burnout_s < 420.0 and 790.0 < g2.reentry_s
