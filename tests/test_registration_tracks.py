"""The registration's ballistic arcs against an independent trajectory (issue 12, DESIGN §6).

A confirmed ballistic track's windows share one trajectory, so eliminating its state once
over all of them (``registration_tracks.arc_window``) ties looks of satellites that never
saw the target in the same window. Checked on a synthetic midcourse flown by the
simulator's propagator (``sensors.missiles.propagate_ballistic``: DOP853, J2), seen by two
biased satellites *in turn* (never together, so a window alone says nothing about their
biases), with a tracker state that wanders by tens of metres from window to window:

- with the true biases the windows fit the arc to the noise (chi-square per degree of
  freedom ~1); windows of an object whose velocity differs by 2 m/s from the arc's do not
  (the control: the registration restarts an arc at such a window);
- the arc's information tells the two satellites' relative bias (a window alone: nothing),
  and the estimate it gives covers the truth (chi-square within its 99.9 % bound).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2 as chi2_dist

from tracklayer.fusion.measurement import predict_los
from tracklayer.fusion.registration_tracks import Arcs, arc_window
from tracklayer.sensors.missiles import propagate_ballistic

SIGMA_RAD = 20e-6  # per-axis look noise, as the built-in scenarios
WINDOW_S = 20.0  # s per window, the registration's default
WINDOWS = 12  # windows along the arc, the satellites alternating
BIAS_RAD = np.array([[6e-6, -9e-6, 12e-6], [-10e-6, 4e-6, -7e-6]])  # true (2, 3)
PRIOR_RAD = 10e-6  # per-axis prior of each bias


def _satellite(k: int, t: np.ndarray) -> np.ndarray:
    """ECI positions (n, 3) m of satellite ``k`` at times ``t`` (n,) s: circular orbits
    1,000 km up, in two planes."""
    a = 7.378e6
    w = np.sqrt(3.986004418e14 / a**3)
    phase = w * t + (0.35 if k == 0 else -0.25)
    tilt = np.radians(80.0 if k == 0 else 60.0)
    node = 0.0 if k == 0 else 0.6
    x = np.cos(phase)
    y = np.sin(phase) * np.cos(tilt)
    z = np.sin(phase) * np.sin(tilt)
    return a * np.stack(
        [x * np.cos(node) - y * np.sin(node), x * np.sin(node) + y * np.cos(node), z], 1
    )


def _scene(seed: int = 5, kick_mps: float = 0.0):
    """Per window: (looks (times, sensors, positions, los, sigmas), the tracker's state (9,)
    at the window's end and that time); from the middle window on, the looks are of an
    object ``kick_mps`` faster along z."""
    rng = np.random.default_rng(seed)
    r0 = 6.378e6 + 400e3
    state0 = np.array([r0 * 0.8, r0 * 0.6, 0.0, -1500.0, 2000.0, 3500.0])
    t = np.arange(0.0, WINDOWS * WINDOW_S, 1.0) + 1.0
    truth = propagate_ballistic(state0, np.concatenate([[0.0], t]))[1:]
    other = propagate_ballistic(state0 + np.r_[0, 0, 0, 0, 0, kick_mps], np.r_[0.0, t])[1:]
    truth[t > WINDOWS // 2 * WINDOW_S] = other[t > WINDOWS // 2 * WINDOW_S]
    out = []
    for w in range(WINDOWS):
        sel = (t > w * WINDOW_S) & (t <= (w + 1) * WINDOW_S)
        k = w % 2  # the satellites take turns
        tw = t[sel]
        pos = _satellite(k, tw)
        u, _, E = predict_los(truth[sel, :3], pos)
        seen = u + np.cross(BIAS_RAD[k], u)
        noise = rng.normal(0.0, SIGMA_RAD, (tw.size, 2))
        m = seen + np.einsum("nk,nki->ni", noise, E)
        m /= np.linalg.norm(m, axis=1)[:, None]
        x = np.zeros(9)  # the tracker's state: the truth off by tens of m, tenths of m/s
        x[:3] = truth[sel][-1, :3] + rng.normal(0.0, 30.0, 3)
        x[3:6] = truth[sel][-1, 3:6] + rng.normal(0.0, 0.3, 3)
        looks = (tw, np.full(tw.size, k), pos, m, np.full(tw.size, SIGMA_RAD))
        out.append((looks, x, float(tw[-1])))
    return out


def _run_arc(scene, theta: np.ndarray):
    """Feed the windows along one arc at the biases ``theta`` (2, 3); returns the summed
    information (6, 6), gradient (6,), chi-square and degrees of freedom."""
    arcs = Arcs()
    info, eta, chi2, dof = np.zeros((6, 6)), np.zeros(6), 0.0, 0
    for looks, x, t_end in scene:
        sw = arc_window(arcs.get(1, t_end), 1e9, x, t_end, *looks, theta)
        assert sw is not None
        idx = (3 * sw.union[:, None] + np.arange(3)).ravel()
        info[np.ix_(idx, idx)] += sw.info
        eta[idx] += sw.eta
        chi2, dof = chi2 + sw.chi2, dof + sw.dof
        arcs.keep(1, t_end, x, sw)
    return info, eta, chi2, dof


def test_windows_fit_the_arc_with_the_true_biases_and_not_without():
    scene = _scene()
    _, _, chi2, dof = _run_arc(scene, BIAS_RAD)
    assert abs(chi2 / dof - 1.0) < 4.0 * np.sqrt(2.0 / dof), (chi2, dof)
    _, _, chi2_x, _ = _run_arc(_scene(kick_mps=2.0), BIAS_RAD)
    assert chi2_x > chi2_dist.ppf(0.9999, dof), (chi2_x, dof)  # two objects: no one arc


def test_an_arc_ties_satellites_that_never_look_together():
    scene = _scene()
    info, eta, _, _ = _run_arc(scene, np.zeros((2, 3)))
    # relative bias of the two satellites: what no single window here can tell
    D = np.hstack([np.eye(3), -np.eye(3)]) / np.sqrt(2.0)
    post = np.linalg.inv(info + np.eye(6) / PRIOR_RAD**2)
    rel_sigma = np.sqrt(np.linalg.eigvalsh(D @ post @ D.T))
    assert rel_sigma[0] < 0.8 * PRIOR_RAD, rel_sigma  # the best-seen relative axis
    est = post @ eta  # one Gauss-Newton step from zero (the model is linear in the biases)
    err = est - BIAS_RAD.ravel()
    assert err @ np.linalg.solve(post, err) < chi2_dist.ppf(0.999, 6), err


def _random_windows(rng: np.random.Generator, count: int):
    """Moving and thrusting windows of 2-60 looks of 1-4 of 6 satellites, some with a look
    turned away from the target (beyond 60 degrees): (looks, state (9,), t_now, thrusting)."""
    from tracklayer.fusion.registration_looks import Looks

    out = []
    for w in range(count):
        n = int(rng.integers(2, 60))
        x = np.r_[
            rng.normal(0, 3e6, 3) + [6.5e6, 0, 0], rng.normal(0, 3e3, 3), rng.normal(0, 20, 3)
        ]
        times = 100.0 + np.sort(rng.uniform(0, 20, n))
        sensors = rng.integers(0, int(rng.integers(1, 5)), n) + int(rng.integers(0, 3))
        pos = rng.normal(0, 1, (n, 3))
        pos = 7.4e6 * pos / np.linalg.norm(pos, axis=1)[:, None]
        d = x[:3] + x[3:6] * (times - times[-1])[:, None] - pos + rng.normal(0, 50, (n, 3))
        los = d / np.linalg.norm(d, axis=1)[:, None]
        if w % 7 == 3:
            los[n // 2] = -los[n // 2]
        sig = rng.uniform(10e-6, 30e-6, n)
        out.append((Looks(times, sensors, pos, los, sig), x, float(times[-1]), w % 3 == 0))
    return out


def test_windows_solved_together_give_each_windows_own_equations_bit_for_bit():
    """The registration solves the windows closed over one update together, numpy over all
    their looks (``moving_equations``): every window's equations must be the floats of
    ``window_equations`` on that window alone, so the estimates and the tracks do not
    depend on which windows closed together; a window with one sensor, too few looks or a
    look turned away gives none either way."""
    from tracklayer.fusion.registration_tracks import moving_equations, window_equations

    rng = np.random.default_rng(3)
    theta = rng.normal(0, 10e-6, (8, 3))
    for size in (1, 2, 5, 17):
        windows = _random_windows(rng, size)
        together = moving_equations(windows, theta)
        alone = [window_equations(lk, x, t, theta, False, thr) for lk, x, t, thr in windows]
        assert [e is None for e in together] == [e is None for e in alone]
        for a, b in zip(together, alone, strict=True):
            if a is not None:
                for u, v in zip(a, b, strict=True):
                    assert u.shape == v.shape and u.tobytes() == v.tobytes()
    assert any(e is not None for e in together) and any(e is None for e in together)
