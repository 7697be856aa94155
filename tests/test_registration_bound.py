"""The Cramér-Rao bound of the pointing biases (``fusion/evaluation/registration_bound``,
DESIGN §6 *The information in the data, stop 24*) against independent calculations: the
registration's own site equations, the random walk of the drift, and the spread of a
least-squares estimate over noise draws."""

from __future__ import annotations

import numpy as np

from tracklayer.fusion.constants import OMEGA_EARTH
from tracklayer.fusion.evaluation.registration_bound import BoundLooks, bias_bound
from tracklayer.fusion.registration_sites import SITE_PRIOR_M, SiteNormals, site_window

URAD = 1e-6
SIGMA = 20 * URAD
PRIOR = 10 * URAD
R_SAT = 7.4e6  # m from the Earth's centre (1,000 km altitude)


def _turn(t: np.ndarray) -> np.ndarray:
    """Rotations (n, 3, 3) Earth-fixed -> ECI at ``t`` s (the Earth turns about z)."""
    c, s = np.cos(OMEGA_EARTH * t), np.sin(OMEGA_EARTH * t)
    rot = np.zeros((t.size, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    return rot


def _scene(seed: int = 1):
    """Three satellites passing over two Earth-fixed hot spots for 300 s, one look each a
    second: (site index, sensor, t, sensor ECI position, site Earth-fixed position)."""
    rng = np.random.default_rng(seed)
    sites = np.array([[6.0e6, 1.0e6, 2.0e6], [5.8e6, 2.0e6, 2.2e6]])
    sites *= 6.371e6 / np.linalg.norm(sites, axis=1, keepdims=True)
    rows = []
    for k in range(3):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        start = sites.mean(axis=0) / np.linalg.norm(sites.mean(axis=0)) + rng.normal(0, 0.15, 3)
        for t in np.arange(0.0, 300.0, 1.0):
            a = 1.0e-3 * t  # rad: ~7 km/s
            p = start * np.cos(a) + np.cross(axis, start) * np.sin(a)
            for j in range(2):
                rows.append((j, k, t, R_SAT * p / np.linalg.norm(p), sites[j]))
    return rows


def _bound_looks(rows) -> BoundLooks:
    t = np.array([r[2] for r in rows])
    rot = _turn(t)
    fixed = np.array([r[4] for r in rows])
    return BoundLooks(
        sensor=np.array([r[1] for r in rows]),
        t_s=t,
        sensor_pos=np.array([r[3] for r in rows]),
        target_pos=np.einsum("nij,nj->ni", rot, fixed),
        sigma_rad=np.full(t.size, SIGMA),
        group=np.array([r[0] for r in rows]),
        basis=rot,
        group_sigma=np.full((2, 3), SITE_PRIOR_M),
    )


def site_windows(rows, site: int, nrm: SiteNormals, theta: np.ndarray):
    """The 60 s windows of ``_scene``'s ``site`` (noise-free looks) solved in turn by the
    registration's ``site_window`` from the equations ``nrm``: yields each window and the
    site's equations with it added."""
    mine = [r for r in rows if r[0] == site]
    for w0 in range(0, 300, 60):
        win = [r for r in mine if w0 <= r[2] < w0 + 60]
        t = np.array([r[2] for r in win])
        rot = _turn(t)
        pos = np.array([r[3] for r in win])
        los = np.einsum("nij,j->ni", rot, win[0][4]) - pos
        los /= np.linalg.norm(los, axis=1, keepdims=True)
        sensors = np.array([r[1] for r in win])
        sw = site_window(nrm, win[0][4], rot, sensors, pos, los, np.full(t.size, SIGMA), theta)
        nrm = sw.normals(w0 + 60.0)
        yield sw, nrm


def test_whole_run_sites_equal_the_registrations_site_equations():
    """The registration's site memory (each window eliminated jointly with the site's
    earlier ones) adds up to the bound with one unknown position per site, for constant
    biases: two implementations of one model."""
    rows = _scene()
    bound = bias_bound(_bound_looks(rows), 3, 300.0, PRIOR, 0.0)
    info = np.eye(9) / PRIOR**2
    theta = np.zeros((3, 3))
    for j in range(2):
        for sw, _ in site_windows(rows, j, SiteNormals(), theta):
            cols = (3 * sw.union[:, None] + np.arange(3)).ravel()
            info[np.ix_(cols, cols)] += sw.info
    np.testing.assert_allclose(bound, np.linalg.inv(info), rtol=1e-6, atol=1e-6 * PRIOR**2)
    # and the bound is far below the prior on the sensors' relative angles
    assert np.sqrt(np.min(np.linalg.eigvalsh(bound[:3, :3]))) < 0.2 * PRIOR


def test_windows_alone_carry_less_than_the_whole_run():
    """Cutting a site's looks into windows, each with its own unknown position, can only
    lose information (the windows' positions are free to differ)."""
    rows = _scene()
    whole = bias_bound(_bound_looks(rows), 3, 300.0, PRIOR, 0.0)
    lk = _bound_looks(rows)
    windows = lk.group * 5 + (lk.t_s // 60).astype(int)
    cut = BoundLooks(lk.sensor, lk.t_s, lk.sensor_pos, lk.target_pos, lk.sigma_rad, windows,
                     lk.basis, np.full((10, 3), SITE_PRIOR_M))  # fmt: skip
    part = bias_bound(cut, 3, 300.0, PRIOR, 0.0)
    assert np.all(np.linalg.eigvalsh(part - whole) > -1e-9 * PRIOR**2)
    assert np.trace(part) > 1.2 * np.trace(whole)


def test_drift_adds_the_random_walk_after_the_last_look():
    """Biases seen only in the first minute: at 600 s their variance is the one at 60 s
    plus the random walk's over the 540 s between (q t)."""
    rows = [r for r in _scene() if r[2] < 60.0]
    lk = _bound_looks(rows)
    drift = 4 * URAD  # per hour
    at_60 = bias_bound(lk, 3, 60.0, PRIOR, drift)
    at_600 = bias_bound(lk, 3, 600.0, PRIOR, drift)
    q = drift**2 / 3600.0
    walk = np.eye(9) * q * 540.0
    np.testing.assert_allclose(at_600, at_60 + walk, rtol=1e-6, atol=1e-9 * PRIOR**2)


def test_least_squares_spread_meets_the_bound():
    """Linear-Gaussian model: the least-squares estimate of the biases (sites eliminated)
    over noise draws spreads as the bound says (the bound is attained, so it is not loose)."""
    rows = [r for r in _scene(2) if r[2] % 5 == 0]
    lk = _bound_looks(rows)
    bound = bias_bound(lk, 3, 300.0, PRIOR, 0.0)
    rng = np.random.default_rng(3)
    d = lk.target_pos - lk.sensor_pos
    rho = np.linalg.norm(d, axis=1)
    u = d / rho[:, None]
    e1 = np.cross([0.0, 0.0, 1.0], u)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    E = np.stack([e1, np.cross(u, e1)], axis=1)
    n = lk.t_s.size
    A = np.zeros((2 * n, 9 + 6))  # biases (rad) then site offsets (m), independent assembly
    for i in range(n):
        k, g = lk.sensor[i], lk.group[i]
        A[2 * i : 2 * i + 2, 3 * k : 3 * k + 3] = np.cross(u[i], E[i])
        A[2 * i : 2 * i + 2, 9 + 3 * g : 12 + 3 * g] = E[i] @ lk.basis[i] / rho[i]
    prior = np.diag([1 / PRIOR**2] * 9 + [1 / SITE_PRIOR_M**2] * 6)
    truth = np.concatenate([rng.normal(0, PRIOR, 9), rng.normal(0, 50.0, 6)])
    est = []
    for _ in range(400):
        y = A @ truth + rng.normal(0, SIGMA, 2 * n)
        x = np.linalg.solve(A.T @ A / SIGMA**2 + prior, A.T @ y / SIGMA**2)
        est.append(x[:9] - truth[:9])
    spread = np.cov(np.array(est).T)
    # along the best-seen directions the estimate's spread is the bound's (400 draws: +-15 %)
    lam, vec = np.linalg.eigh(bound)
    seen = vec[:, lam < (0.3 * PRIOR) ** 2]
    ratio = np.diag(seen.T @ spread @ seen) / lam[lam < (0.3 * PRIOR) ** 2]
    assert seen.shape[1] >= 3
    assert np.all((ratio > 0.75) & (ratio < 1.3)), ratio
