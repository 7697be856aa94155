"""``tracklayer export FILE.mcap --czml OUT.czml`` and evaluate's ``scene.czml``: a tracked
recording as CZML that czml3's model reads back, with one packet per thing shown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from czml3 import Document

from tracklayer.services.cli import main
from tracklayer.services.evaluation.czml import czml_rotation
from tracklayer.services.wire.recording import RecordingReader

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracked(simulated_mcap, tmp_path_factory) -> Path:
    sim = simulated_mcap("single-icbm", duration_s=420)
    out = tmp_path_factory.mktemp("czml") / "tracked.mcap"
    assert main(["track", str(sim), "--out", str(out)]) == 0
    return out


def expected_packets(path: Path) -> dict[str, int]:
    """Packets by kind, counted from the recording independently of the exporter."""
    tracks, impacts, launches, truth, sats = set(), set(), set(), set(), set()
    with RecordingReader(path) as reader:
        for _, r in reader.tracks():
            tracks.add(r.track_id)
            if r.impact is not None:
                impacts.add(r.track_id)
            if r.launch is not None:
                launches.add(r.track_id)
        for _, t in reader.truth():
            truth.update(o.object_id for o in t.objects)
        for _, f in reader.frames():
            sats.add(f.sensor_id)
    return {
        "document": 1,
        "truth": len(truth),
        "track": len(tracks),
        "impact": len(impacts),
        "impact3": len(impacts),
        "launch": len(launches),
        "satellite": len(sats),
    }


def test_export_writes_czml_that_czml3_validates_with_every_expected_packet(
    tracked, tmp_path, capsys
):
    out = tmp_path / "scene.czml"
    assert main(["export", str(tracked), "--czml", str(out)]) == 0
    doc = Document.model_validate_json(out.read_text())  # czml3's model: raises if invalid
    kinds: dict[str, int] = {}
    for p in doc.packets:
        kind = p.id.split("/")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    want = expected_packets(tracked)
    assert kinds == want
    assert want["track"] >= 1 and want["impact"] >= 1 and want["launch"] >= 1
    assert want["satellite"] == 28 and want["truth"] == 1
    assert f"{sum(want.values())} CZML packets" in capsys.readouterr().out

    packets = {p["id"]: p for p in json.loads(out.read_text())}
    clock = packets["document"]["clock"]
    assert clock["interval"].startswith("2026-01-01T00:")
    track = next(p for k, p in packets.items() if k.startswith("track/"))
    samples = track["position"]["cartographicDegrees"]
    assert len(samples) % 4 == 0 and len(samples) >= 40  # time-tagged lon, lat, height
    assert all(
        -180 <= lon <= 180 and -90 <= lat <= 90
        for lon, lat in zip(samples[1::4], samples[2::4], strict=True)
    )
    assert "/" in track["availability"]
    colours = {tuple(c["rgba"]) for c in track["point"]["color"]}
    assert len(colours) >= 2  # boost, then midcourse: coloured by phase over time
    impact = next(p for k, p in packets.items() if k.startswith("impact/"))
    impact3 = packets["impact3/" + impact["id"].split("/", 1)[1]]
    a1 = impact["ellipse"]["semiMajorAxis"][-1]["number"]
    a3 = impact3["ellipse"]["semiMajorAxis"][-1]["number"]
    assert a3 == pytest.approx(3 * a1) and a1 > 0
    # the last prediction's orientation, as Cesium turns it (major axis east at rotation 0)
    with RecordingReader(tracked) as reader:
        last = [r for _, r in reader.tracks() if r.track_id == impact["id"].split("/", 1)[1]]
    last = max((r for r in last if r.impact is not None), key=lambda r: (r.time_ns, r.revision))
    rot = impact["ellipse"]["rotation"][-1]["number"]
    assert rot == pytest.approx(math.radians(90.0 - last.impact.orientation_deg))
    assert impact["ellipse"]["semiMinorAxis"][-1]["number"] <= a1


def test_czml_rotation_puts_cesiums_major_axis_where_orientation_says():
    # Cesium: major axis direction = east cos(r) + north sin(r)
    for ori, (east, north) in ((0.0, (0, 1)), (90.0, (1, 0)), (45.0, (0.7071, 0.7071))):
        r = czml_rotation(ori)
        assert (math.cos(r), math.sin(r)) == pytest.approx((east, north), abs=1e-4)


def test_evaluate_writes_scene_czml_beside_its_plots(tracked, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["evaluate", str(tracked), "--report", str(out)]) == 0
    czml = out / "scene.czml"
    assert f"czml:    {czml}" in capsys.readouterr().out
    assert len(Document.model_validate_json(czml.read_text()).packets) == sum(
        expected_packets(tracked).values()
    )


def test_export_errors_name_the_file_or_flag(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.mcap"), "--czml", str(tmp_path / "o.czml")]) == 2
    assert "missing.mcap: no such recording" in capsys.readouterr().err
    bad = tmp_path / "bad.mcap"
    bad.write_text("not mcap")
    assert main(["export", str(bad), "--czml", str(tmp_path / "o.czml")]) == 2
    assert "bad.mcap" in capsys.readouterr().err
    assert main(["export", str(bad), "--czml", str(tmp_path / "no" / "o.czml")]) == 2
    assert "--czml: directory" in capsys.readouterr().err


def test_samples_at_one_instant_keep_the_last_so_czml_times_increase():
    """Two reports of one data time, or an impact ellipse whose validity ends where it
    starts (the last report after the predicted impact time), once made czml3 refuse the
    whole scene ('Time values must be increasing') and `make demo` fail."""
    from czml3.properties import Position

    from tracklayer.fusion.domain import GroundEllipse
    from tracklayer.services.evaluation.czml import _ellipse_packet, _samples

    rows = [(100.0, 10.0, 20.0, 5.0), (100.0004, 10.5, 20.5, 6.0), (101.0, 11.0, 21.0, 7.0)]
    flat = _samples(100.0, rows)
    assert flat == [0.0, 20.5, 10.5, 6.0, 1.0, 21.0, 11.0, 7.0]
    Position(epoch="2026-12-06T00:00:00Z", cartographicDegrees=flat)
    e = GroundEllipse(10.0, 20.0, 0, 2_000.0, 1_000.0, 30.0)
    items = [(100.0, 105.0, e), (105.0, 105.0, e)]  # the last valid from 105 s to 105 s
    packet = _ellipse_packet("impact/x", "x", items, 1.0, [255, 0, 0, 255])
    Document(packets=[packet]).model_dump_json()
