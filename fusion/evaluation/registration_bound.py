"""Cramér-Rao bound of the sensors' pointing biases on a scene's true geometry (DESIGN §6,
*The information in the data, stop 24*).

The registration's linear-Gaussian model (DESIGN §6, *Sensor registration*): look ``i`` of
sensor ``k`` at time ``t`` of a target at true range ``rho`` along ``u`` gives the gnomonic
residual ``y = E (theta_k(t) x u) + E dp / rho + noise`` (``E`` (2, 3) the tangent basis,
``sigma`` rad per axis). ``theta_k(t)`` is piecewise linear between nodes every ``node_s``
(the simulator's drift grid, ``sensors/pointing_bias.py``) with a prior ``N(0, prior^2)``
per axis on the first node and independent random-walk steps ``N(0, q node_s)``; ``dp =
B z_g`` is the target's unknown offset, ``z_g`` the parameters of the look's *group* (a hot
spot over the whole run or over one window, a missile over one window...). The nuisance
parameters are eliminated with the rest (one joint information matrix, then the marginal),
so the result is the smallest covariance of the biases at ``at_s`` that any unbiased use of
these looks can reach: the bound the estimator's own posterior is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

URAD = 1e-6


@dataclass(frozen=True, slots=True)
class BoundLooks:
    """Looks of a scene, in any order. ``group`` -1: a target whose position is known."""

    sensor: np.ndarray  # (n,) int sensor index
    t_s: np.ndarray  # (n,) s from the epoch
    sensor_pos: np.ndarray  # (n, 3) m, ECI
    target_pos: np.ndarray  # (n, 3) m, ECI (true)
    sigma_rad: np.ndarray  # (n,) rad per tangent axis
    group: np.ndarray  # (n,) int nuisance group, -1: none
    basis: np.ndarray  # (n, 3, m) m per unit of each of the group's parameters (zero-padded)
    group_sigma: np.ndarray  # (G, m) prior sigma of each group parameter; NaN: no parameter
    # (G may be 0: every target known)

    def before(self, t_s: float) -> BoundLooks:
        """The looks up to ``t_s`` (s from the epoch)."""
        k = self.t_s <= t_s
        return BoundLooks(
            self.sensor[k], self.t_s[k], self.sensor_pos[k], self.target_pos[k],
            self.sigma_rad[k], self.group[k], self.basis[k], self.group_sigma,
        )  # fmt: skip


def _geometry(lk: BoundLooks) -> tuple[np.ndarray, np.ndarray]:
    """Per look, the Jacobians (n, 2, 3) of the whitened residual on the bias (per urad)
    and on the target's position (per m)."""
    d = lk.target_pos - lk.sensor_pos
    rho = np.linalg.norm(d, axis=1)
    u = d / rho[:, None]
    a = np.where(np.abs(u[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(a, u)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    E = np.stack([e1, np.cross(u, e1)], axis=1)  # (n, 2, 3)
    w = 1.0 / (lk.sigma_rad / URAD)  # per urad of noise
    h_theta = np.cross(u[:, None, :], E) * w[:, None, None]  # E (theta x u) = (u x E) theta
    h_pos = E / (rho * URAD)[:, None, None] * w[:, None, None]  # urad per m
    return h_theta, h_pos


def _bias_columns(lk: BoundLooks, nodes: int, node_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Columns (n, 6) of each look's two bias nodes and their weights (n, 2)."""
    s = lk.t_s / node_s
    n0 = np.clip(np.floor(s).astype(int), 0, max(nodes - 2, 0))
    a = np.clip(s - n0, 0.0, 1.0) if nodes > 1 else np.zeros_like(s)
    base = (lk.sensor * nodes + n0) * 3
    cols = np.concatenate([base[:, None] + np.arange(3), base[:, None] + 3 + np.arange(3)], 1)
    if nodes == 1:
        cols[:, 3:] = cols[:, :3]
    return cols, np.stack([1.0 - a, a], 1)


def _prior(n_sensors: int, nodes: int, prior_urad: float, step_var: float) -> np.ndarray:
    """Information (3 S nodes,) square of the bias prior: the first node ~ N(0, prior^2),
    each later node its predecessor plus N(0, step_var) (urad^2)."""
    m = n_sensors * nodes * 3
    J = np.zeros((m, m))
    first = (np.arange(n_sensors) * nodes)[:, None] * 3 + np.arange(3)
    J[first.ravel(), first.ravel()] = 1.0 / prior_urad**2
    if nodes > 1:
        node = np.arange(n_sensors * nodes).reshape(n_sensors, nodes)
        a = (node[:, :-1, None] * 3 + np.arange(3)).ravel()
        b = a + 3
        np.add.at(J, (a, a), 1.0 / step_var)
        np.add.at(J, (b, b), 1.0 / step_var)
        np.add.at(J, (a, b), -1.0 / step_var)
        np.add.at(J, (b, a), -1.0 / step_var)
    return J


def bias_bound(
    looks: BoundLooks,
    n_sensors: int,
    at_s: float,
    prior_rad: float,
    drift_rad_per_hour: float,
    node_s: float = 60.0,
) -> np.ndarray:
    """The bound: covariance (3 S, 3 S) rad^2 of every sensor's bias at ``at_s`` (s from
    the epoch) given the looks up to then (filtering, not smoothing); constant biases
    when ``drift_rad_per_hour`` is 0. Nodes every ``node_s`` from the epoch."""
    lk = looks.before(at_s)
    drift = drift_rad_per_hour > 0.0
    nodes = int(np.ceil(at_s / node_s - 1e-9)) + 1 if drift else 1
    nb = n_sensors * nodes * 3
    sig = looks.group_sigma
    used = np.isfinite(sig)  # (G, m)
    N = nb + int(used.sum())
    h_theta, h_pos = _geometry(lk)
    cols, wts = _bias_columns(lk, nodes, node_s)
    H = np.concatenate([h_theta * wts[:, None, :1], h_theta * wts[:, None, 1:]], axis=2)
    if nodes == 1:
        H[:, :, 3:] = 0.0
    if N > nb:  # the looks' nuisance columns
        first = nb + np.concatenate([[0], np.cumsum(used.sum(axis=1))[:-1]]).astype(int)
        g = np.where(lk.group >= 0, lk.group, 0)
        on = used[g] & (lk.group >= 0)[:, None]  # (n, m): the look's group has that parameter
        g_cols = np.where(on, first[g][:, None] + np.arange(used.shape[1]), first[g][:, None])
        h_g = np.einsum("nri,nim->nrm", h_pos, lk.basis) * on[:, None, :]
        cols = np.concatenate([cols, g_cols], axis=1)
        H = np.concatenate([H, h_g], axis=2)
    blk = np.einsum("nri,nrj->nij", H, H)
    flat = (cols[:, :, None] * N + cols[:, None, :]).ravel()
    J = np.bincount(flat, weights=blk.ravel(), minlength=N * N).reshape(N, N)
    step = (drift_rad_per_hour / URAD) ** 2 / 3600.0 * node_s
    J[:nb, :nb] += _prior(n_sensors, nodes, prior_rad / URAD, step if drift else 1.0)
    gs = sig[used]
    J[nb + np.arange(gs.size), nb + np.arange(gs.size)] += 1.0 / gs**2
    C = np.linalg.inv(J)
    if not drift:
        return C[:nb, :nb] * URAD**2
    s = at_s / node_s
    n0 = min(int(np.floor(s)), nodes - 2)
    a = s - n0
    L = np.zeros((3 * n_sensors, N))
    for k in range(n_sensors):
        i0 = (k * nodes + n0) * 3 + np.arange(3)
        L[3 * k + np.arange(3), i0] = 1.0 - a
        L[3 * k + np.arange(3), i0 + 3] = a
    return L @ C @ L.T * URAD**2
