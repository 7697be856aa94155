"""Sensor registration on the built-in ``biased`` scenario (issue 12 accuracy figures).

The scenario (28 satellites, 10 urad biases drifting, four missiles, 30 hot spots,
latency, drops) is simulated once per session and tracked by ``tracklayer track`` with
registration on (the default) and off; the same scenario without bias is simulated and
tracked once for the RMSE reference (same noise per frame: the draws are keyed). The
figures come from ``tracklayer evaluate``'s code (``services/evaluation`` over
``fusion/evaluation``), scored against the simulator's truth in the recording.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tracklayer.sensors.scenario import load_scenario
from tracklayer.services.cli import main
from tracklayer.services.evaluation.registration import read_biases
from tracklayer.services.evaluation.run import read_recording

pytestmark = pytest.mark.slow


def _track(recording: Path, out: Path, *flags: str) -> Path:
    assert main(["track", str(recording), "--out", str(out), *flags]) == 0
    return out


@pytest.fixture(scope="module")
def recordings(simulated_mcap, tmp_path_factory) -> dict[str, Path]:
    """The ``biased`` recording and the same scenario without bias."""
    root = tmp_path_factory.mktemp("registration")
    biased = simulated_mcap("biased")
    text = Path(load_scenario("biased").source)
    unbiased_toml = root / "unbiased.toml"
    source = text.read_text() if text.exists() else _builtin_text()
    unbiased_toml.write_text(
        source.replace("bias_sigma_urad = 10", "bias_sigma_urad = 0").replace(
            "bias_drift_urad_per_hour = 4", "bias_drift_urad_per_hour = 0"
        )
    )
    return {"biased": biased, "unbiased": simulated_mcap(str(unbiased_toml)), "root": root}


#: run -> (recording, flags): registration on, off, no bias, no bias with registration off
RUNS = {
    "on": ("biased", ()),
    "off": ("biased", ("--no-registration",)),
    "ref": ("unbiased", ()),
    "ref_off": ("unbiased", ("--no-registration",)),
}


@pytest.fixture(scope="module")
def runs(recordings):
    """``runs[name]`` -> (truth figures, bias estimates) of one of :data:`RUNS`, tracked
    when first asked for (each test's setup tracks only what it reads)."""

    class Runs(dict):
        def __missing__(self, name: str):
            rec, flags = RUNS[name]
            path = _track(recordings[rec], recordings["root"] / f"{name}.mcap", *flags)
            result, meta = read_recording(path)
            t = result.to_dict()["truth"]
            print(
                f"{name}: midcourse RMSE {t['position_rmse_m']['midcourse']:.2f} m, NEES "
                f"{t['nees_midcourse_mean']:.2f}, above 22.5 "
                f"{t['nees_midcourse_share_above']:.3f}, impact in 3 sigma "
                f"{t['impact_inside_3sigma_share']}"
            )
            self[name] = (t, read_biases(path, meta))
            return self[name]

    return Runs()


def _builtin_text() -> str:
    from importlib import resources

    return (resources.files("tracklayer.sensors.scenarios") / "biased.toml").read_text()


def test_midcourse_covariance_is_honest_with_registration(runs):
    m, _ = runs["on"]
    assert 1.5 <= m["nees_midcourse_mean"] <= 12.0  # measured 9.34 (10.9 before stop 18)
    assert m["nees_midcourse_share_above"] <= 0.05  # measured 0 % (0.1 %)
    assert m["impact_inside_3sigma_share"] >= 0.90  # measured 100 %


def test_without_registration_the_covariance_is_dishonest(runs):
    m, biases = runs["off"]
    assert biases is None  # nothing estimated, nothing recorded
    assert m["nees_midcourse_mean"] > 12.0  # measured 82


def test_bias_estimates_after_ten_minutes(runs):
    _, ev = runs["on"]
    sc = ev.at_10_min
    assert sc is not None and len(sc.sensors) >= 8
    # observable axes (each sensor's covariance principal axes with sigma <= half the
    # prior, DESIGN §6 *Observability test*): error <= 30 % of the true RMS
    assert sc.observable_share >= 0.5  # measured 86 % (ECI axes until stop 18: 95 %)
    assert sc.rms_observable_error_urad <= 0.30 * sc.rms_true_urad  # 1.84 / 10.6 (ECI 2.46)
    assert sc.within_3sigma >= 0.90  # the sigmas cover the error (every axis)


def test_midcourse_rmse_close_to_the_unbiased_scene(runs):
    on, _ = runs["on"]
    ref, _ = runs["ref"]
    # measured 14.44 m against 11.26 m (1.28x; before stop 18's looks per track 14.36 against
    # 11.25; 1.24x against stop 11's reference of 11.6 m, before the bias scale made it
    # better); the other seeds by hand: DESIGN §6, *Issue 12's bounds per seed*
    assert on["position_rmse_m"]["midcourse"] <= 1.3 * ref["position_rmse_m"]["midcourse"]


def test_registration_costs_an_unbiased_scene_little(runs):
    """Without bias, registration on stays close to off: sensors found unbiased are barely
    widened (the bias scale), so the tracks are weighted as without registration."""
    on, _ = runs["ref"]
    off, _ = runs["ref_off"]
    # measured 11.26 m / NEES 5.48 against 11.05 m / 6.40 (stop 17: 11.25 m / 5.52; stop
    # 11: 11.60 m / 4.72); the looks per track counted without the bias scale gave 11.28 m
    # / NEES 4.96 (0.775x: why their cap shrinks with it, DESIGN §6 *Looks per track*)
    assert on["position_rmse_m"]["midcourse"] <= 1.03 * off["position_rmse_m"]["midcourse"]
    assert on["nees_midcourse_mean"] >= 0.8 * off["nees_midcourse_mean"]


def _bound_tools():
    """benchmarks/registration_bound.py (the scene's looks on the simulator's truth and
    the axes `evaluate` scores), loaded by path: the benchmarks are not a package."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "registration_bound.py"
    spec = importlib.util.spec_from_file_location("registration_bound_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_estimator_is_efficient_for_its_windows(runs):
    """reg14's finding as a test (DESIGN §6, *The information in the data, stop 24*): on
    the axes `evaluate` scores at 10 minutes, the estimator's own sigma is within 10 % of
    the Cramér-Rao bound of the same windows (60 s hot-spot sites, 20 s midcourse, 6 s
    boost) on the scene's true geometry at the estimator's drift and prior, and never
    below it (a sigma under the bound would be overconfident: the bound uses every
    detection, the estimator a subset)."""
    from tracklayer.fusion.config import FusionConfig
    from tracklayer.fusion.evaluation.registration_bound import bias_bound
    from tracklayer.sensors.simulation import build_world

    bench = _bound_tools()
    _, ev = runs["on"]
    w = build_world(load_scenario("biased"), None)
    raw = bench.scene_looks(w, 600.0)
    cfg = FusionConfig()
    looks = bench.bound_looks(w, raw, 60.0, 20.0)
    S = len(w.constellation.ids)
    prior, drift = cfg.registration_prior_sigma_rad, cfg.registration_drift_rad_per_hour
    bound = bias_bound(looks, S, 600.0, prior, drift)
    own, _, along = bench.scored_axes(ev.at_10_min, {"w": bound}, list(w.constellation.ids))
    ratio = float(np.sqrt(own.mean() / along["w"].mean()))
    print(f"own sigma / windowed bound: {ratio:.3f} over {own.size} axes")
    assert 1.0 <= ratio <= 1.10  # reg14: 5-9 % above on seeds 3, 5, 7, 11, 13
