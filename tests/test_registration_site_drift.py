"""A hot spot's earlier windows carried forward by the biases' random walk
(``registration_site_drift``, ``registration_sites.SiteNormals.predicted``; DESIGN §6,
*Drift-aware site memory, stop 25*): the prediction against the covariance form of the
same random walk, a constant bias keeping every window whole, and the estimator finding
a bias from satellites that never saw a site together."""

from __future__ import annotations

import numpy as np
from test_registration import _feed
from test_registration_bound import _scene, site_windows

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.registration import Registration
from tracklayer.fusion.registration_sites import SiteNormals

URAD = 1e-6


def _site_equations(rows, drifting: bool = True) -> SiteNormals:
    """One site's equations from the windows of ``_scene``'s first site (60 s each)."""
    start = SiteNormals.drifting() if drifting else SiteNormals()
    return [nrm for _, nrm in site_windows(rows, 0, start, np.zeros((3, 3)))][-1]


def _joint(nrm: SiteNormals) -> tuple[np.ndarray, np.ndarray]:
    """The joint information matrix (3 + 3 m) and vector of (position, biases)."""
    ks = np.array(sorted(nrm.B))
    Bk = nrm.block(ks)
    Y = np.block([[nrm.C, Bk], [Bk.T, nrm.D]])
    return Y, np.concatenate([nrm.b, nrm.g])


def test_the_biases_block_adds_up_the_windows_looks():
    """Kept alongside, the biases' block makes the site's joint equations those of all its
    looks at once (the unknowns' information is positive definite with the prior and its
    solution is the least-squares fit of every look: zero biases, the true position)."""
    nrm = _site_equations(_scene())
    Y, eta = _joint(nrm)
    assert sorted(nrm.B) == [0, 1, 2] and nrm.D.shape == (9, 9)
    assert np.all(np.linalg.eigvalsh(Y + np.diag([0.0] * 3 + [1 / (10 * URAD) ** 2] * 9)) > 0)
    x = np.linalg.solve(Y + np.diag([0.0] * 3 + [1 / (10 * URAD) ** 2] * 9), eta)
    assert np.all(np.abs(x[:3]) < 0.1) and np.all(np.abs(x[3:]) < 1e-9)  # m, rad (noise-free)


def test_prediction_is_the_random_walk_added_to_the_covariance():
    """Information prediction against covariance form: with the biases' prior added so the
    joint matrix is invertible, ``inv(Y')`` = ``inv(Y)`` + the walk's covariance on the
    biases (q dt per axis), and the mean is unchanged."""
    nrm = _site_equations(_scene())
    prior = np.diag([0.0] * 3 + [1 / (10 * URAD) ** 2] * 9)
    with_prior = SiteNormals(nrm.C, nrm.b, nrm.B, nrm.windows, nrm.t_s, nrm.prior,
                             nrm.D + prior[3:, 3:], nrm.g)  # fmt: skip
    q, dt = (5 * URAD) ** 2 / 3600.0, 240.0
    out = with_prior.predicted(nrm.t_s + dt, q)
    Y0, e0 = _joint(with_prior)
    Y1, e1 = _joint(out)
    P0 = np.linalg.inv(Y0)
    walk = np.diag([0.0] * 3 + [q * dt] * 9)
    np.testing.assert_allclose(np.linalg.inv(Y1), P0 + walk, rtol=1e-6, atol=1e-9 * q * dt)
    np.testing.assert_allclose(np.linalg.solve(Y1, e1), P0 @ e0, rtol=1e-6, atol=1e-9)
    assert out.t_s == nrm.t_s + dt and out.windows == nrm.windows


def test_a_constant_bias_keeps_every_window_whole():
    """Without drift (q = 0) or without time passing the equations are carried as they are:
    the memory is then the whole run's (``registration_site_memory_s`` without fading)."""
    nrm = _site_equations(_scene())
    assert nrm.predicted(nrm.t_s + 600.0, 0.0) is nrm
    assert nrm.predicted(nrm.t_s, 1e-15) is nrm
    faded = _site_equations(_scene(), drifting=False).faded(nrm.t_s, 1e30)
    np.testing.assert_allclose(faded.C, nrm.C, rtol=1e-12)
    for k in nrm.B:
        np.testing.assert_allclose(faded.B[k], nrm.B[k], rtol=1e-12)


def test_old_windows_tie_todays_biases_less_the_longer_ago():
    """The longer since a site's windows, the less its position is known once the biases
    are free (the walk loosens the old looks' tie): the position's information given the
    biases falls monotonically with the time carried, towards what the looks tell of it with
    every bias free (the Schur complement of the biases' block)."""
    nrm = _site_equations(_scene())
    q = (5 * URAD) ** 2 / 3600.0
    info = [np.trace(nrm.predicted(nrm.t_s + dt, q).C) for dt in (0.0, 60.0, 600.0, 6e4, 6e6)]
    assert all(a > b for a, b in zip(info, info[1:], strict=False))
    ks = np.array(sorted(nrm.B))
    free = nrm.C - nrm.block(ks) @ np.linalg.pinv(nrm.D) @ nrm.block(ks).T
    assert info[-1] < 0.1 * info[0]  # measured 0.082 against 2.20 (1/m^2)
    np.testing.assert_allclose(info[-1], np.trace(free), rtol=0.05)


def test_one_satellite_at_a_time_registers_the_satellites_with_drifting_sites():
    """Five satellites look at five hot spots in turn, each alone for 55 s: with the sites'
    windows carried forward by the drift, the later satellites' windows are tied to the
    earlier ones through the site and find the biased sensor relative to the others within
    3 sigma (as the faded memory does; without any memory nothing is learnt)."""
    bias = {2: np.array([8e-6, -6e-6, 5e-6])}
    reg = _feed(Registration(FusionConfig(registration_site_drift=True)), bias, 5 * 70 + 20,
                5e-6, turn_s=70)  # fmt: skip
    est = {b.sensor_id: b for b in reg.estimates()}
    assert reg.windows_total >= 16 and reg.rejected_total == 0 and reg.outliers_total == 0
    others = np.mean([est[f"sat-{k}"].angles_rad for k in (0, 1, 3, 4)], axis=0)
    err = np.array(est["sat-2"].angles_rad) - others - bias[2]
    sigma = np.array(est["sat-2"].sigma_rad)
    assert np.all(sigma < 5e-6)
    assert np.all(np.abs(err) <= np.maximum(3 * sigma, 1.5e-6))
    site = next(iter(reg._sites.normals.values()))
    assert site.D is not None and site.D.shape[0] == 3 * len(site.B)
