"""The registration's hot-spot site model against the simulator (issue 12, DESIGN §6).

The registration treats a hot spot as one Earth-fixed point for the whole run (its
position eliminated over every window, ``registration_sites.site_window``), turning with
the Earth about ECI z at ``OMEGA_EARTH`` from the first site's data time. If that model
and the simulator's frames (TEME, GMST) disagreed, the sites would teach false biases
with the confidence of thousands of looks. Checked on the built-in ``biased`` scene: the
looks of each hot spot, fed window by window with the simulator's *true* biases, fit one
Earth-fixed point to the noise (chi-square per degree of freedom ~1, over ~21,000); with
the biases ignored they fit measurably worse.
"""

from __future__ import annotations

import numpy as np
import pytest

from tracklayer.fusion.evaluation.registration import BiasTruth
from tracklayer.fusion.geodesy import teme_to_ecef_matrix
from tracklayer.fusion.registration_sites import SiteNormals, Sites, site_window
from tracklayer.sensors.scenario import load_scenario
from tracklayer.sensors.simulation import build_world, simulate_to_lists

DURATION_S = 240.0  # s of the scene simulated
WINDOW_S = 60.0  # s per window, as the registration's hot-spot windows
MATCH_RAD = 150e-6  # a detection this close to a hot spot's true line of sight is its look


@pytest.fixture(scope="module")
def looks():
    """Per hot spot: its looks (time s, sensor index, sensor position, measured LOS,
    sigma, true bias (3,) rad), the hot spots' ECI positions at the first look's time, and
    the number of sensors."""
    scenario = load_scenario("biased")
    run = simulate_to_lists(scenario, duration_s=DURATION_S)
    world = build_world(scenario, duration_s=DURATION_S)
    truth = BiasTruth.from_table(run.meta["sensor_bias"])
    ids = sorted({f.sensor_id for f in run.frames})
    index = {s: k for k, s in enumerate(ids)}
    per_spot: dict[int, list] = {}
    t0 = min(f.time_s for f in run.frames)
    for f in sorted(run.frames, key=lambda f: (f.time_ns, f.sensor_id)):
        if f.n_detections == 0:
            continue
        hot = (teme_to_ecef_matrix(f.time_s).T @ world.hotspots_ecef.T).T  # ECI (TEME)
        d = hot - f.position
        u = d / np.linalg.norm(d, axis=1)[:, None]
        theta = truth.at(f.sensor_id, f.time_s - scenario.epoch_s) * 1e-6
        true_seen = u + np.cross(theta, u)  # what a biased sensor sees of each hot spot
        ang = np.arccos(np.clip(f.los @ true_seen.T, -1.0, 1.0))  # (detections, spots)
        for j in range(hot.shape[0]):
            i = int(np.argmin(ang[:, j]))
            if ang[i, j] < MATCH_RAD and np.sum(ang[:, j] < 10 * MATCH_RAD) == 1:
                row = (f.time_s, index[f.sensor_id], f.position, f.los[i], float(f.sigma[i]), theta)
                per_spot.setdefault(j, []).append(row)
    hot0 = (teme_to_ecef_matrix(t0).T @ world.hotspots_ecef.T).T
    return per_spot, hot0, t0, len(ids)


def _chi2_per_dof(looks, use_truth: bool) -> tuple[float, int]:
    """Every hot spot's looks through ``site_window`` window by window (its equations kept
    across windows, biases known: the true ones or zero); chi-square per degree of freedom
    and the degrees of freedom."""
    per_spot, hot0, t0, n_sensors = looks
    chi2, dof = 0.0, 0
    for j, rows in per_spot.items():
        sites = Sites()
        key = sites.key(np.concatenate([hot0[j], np.zeros(6)]), t0)
        nrm = SiteNormals()
        for start in np.arange(t0, t0 + DURATION_S, WINDOW_S):
            win = [r for r in rows if start <= r[0] < start + WINDOW_S]
            if len(win) < 4:
                continue
            t, k, pos, los, sig, th = (np.array(c) for c in zip(*win, strict=True))
            theta = np.zeros((n_sensors, 3))
            if use_truth:
                theta[k] = th  # the truth at each look (the drift is slow: one per sensor)
            ref, rot = sites.frame(key, t)
            sw = site_window(nrm, ref, rot, k, pos, los, sig, theta)
            assert sw is not None
            chi2, dof = chi2 + sw.chi2, dof + sw.dof
            nrm = sw.normals(float(t[-1]))
    return chi2 / dof, dof


def test_hot_spot_looks_fit_one_earth_fixed_point_once_the_true_biases_are_out(looks):
    per_dof, dof = _chi2_per_dof(looks, use_truth=True)
    assert dof > 10_000  # thousands of looks of many hot spots by several satellites
    # chi-square(dof) / dof has sigma sqrt(2 / dof) (0.0096 here); measured 0.987
    assert abs(per_dof - 1.0) <= 3.0 * np.sqrt(2.0 / dof)


def test_with_the_biases_ignored_the_same_looks_fit_worse(looks):
    """The control: most of a bias is absorbed into the site's position (a rotation moves
    a site's every line of sight alike), but the satellites' baselines still show it."""
    per_dof, dof = _chi2_per_dof(looks, use_truth=False)
    assert per_dof > 1.0 + 3.0 * np.sqrt(2.0 / dof)  # measured 1.048 (6 sigma)
