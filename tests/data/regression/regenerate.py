"""Regenerate the recorded regression cases of tests/test_regression_recordings.py.

For every scenario file ``NAME.toml`` in this directory (or the names given)::

    tracklayer simulate NAME.toml --out NAME.mcap            # the checked-in recording
    tracklayer track NAME.mcap --out <tmp>/tracked.mcap      # = what a live replay gives
    tracklayer evaluate <tmp>/tracked.mcap --save-baseline NAME.baseline.json

then adjusts the baseline (see :data:`ADJUST`). Offline tracking gives exactly the
reports of a live ``--max-speed`` replay with ``--idle-timeout 0`` (DESIGN §6), so the
baseline figures are the live ones. Run it with ``make regression-data`` after a
deliberate change to the simulator, the tracker or the metrics, look at the figures
that moved (``git diff tests/data/regression``) and say why in the commit message.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tracklayer.services.cli import main
from tracklayer.services.evaluation.baseline import lookup

HERE = Path(__file__).resolve().parent
MAX_BYTES = 1_000_000  # a checked-in recording must stay well under 1 MB

# Figures whose default comparison (services/baseline.py DEFAULT_FIGURES) does not fit a
# regression check: "equal" on the confirmed-track count would fail a tracker that
# drops a duplicate track; completeness and false-track share catch the real losses.
ADJUST = {
    "tracks.n_confirmed": {"better": "lower", "rel_tol": 0.0, "abs_tol": 1.0},
}
# Figures beyond the defaults that these short, midcourse-free cases do have:
# (key, better, rel_tol, abs_tol). RMSE over a few hundred samples moves by ~25 %
# between equally good trackers; a track break is a real loss.
EXTRA = (
    ("truth.position_rmse_m.reentry", "lower", 0.25, 50.0),
    ("truth.velocity_rmse_mps.boost", "lower", 0.25, 10.0),
    ("truth.track_breaks_in_stereo", "lower", 0.0, 0.0),
)


def regenerate(name: str) -> dict:
    toml = HERE / f"{name}.toml"
    rec = HERE / f"{name}.mcap"
    baseline = HERE / f"{name}.baseline.json"
    if not toml.is_file():
        raise SystemExit(f"{toml}: no such scenario file")
    if main(["simulate", str(toml), "--out", str(rec)]) != 0:
        raise SystemExit(f"{name}: simulate failed")
    size = rec.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{rec}: {size} bytes, over {MAX_BYTES}: shorten the scenario")
    with tempfile.TemporaryDirectory() as tmp:
        tracked = Path(tmp) / "tracked.mcap"
        if main(["track", str(rec), "--out", str(tracked)]) != 0:
            raise SystemExit(f"{name}: track failed")
        argv = ["evaluate", str(tracked), "--report", str(Path(tmp) / "report"), "--no-plots"]
        if main([*argv, "--save-baseline", str(baseline)]) != 0:
            raise SystemExit(f"{name}: evaluate failed")
        metrics = json.loads((Path(tmp) / "report" / "metrics.json").read_text())
    data = json.loads(baseline.read_text())
    for key, better, rel, ab in EXTRA:
        value = lookup(metrics, key)
        if value is not None:
            data["figures"][key] = {"value": value, "better": better, "rel_tol": rel, "abs_tol": ab}
    data["recording"] = rec.name
    data["scenario_file"] = toml.name
    data["made_by"] = "tests/data/regression/regenerate.py (make regression-data)"
    for key, spec in ADJUST.items():
        if key in data["figures"]:
            data["figures"][key].update(spec)
    baseline.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{name}: {rec.name} ({size} bytes), {baseline.name} ({len(data['figures'])} figures)")
    return data


def run(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("*.toml"))
    for name in names:
        regenerate(name)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
