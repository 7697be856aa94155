"""A track's window, and ballistic arcs, of the sensor registration (:mod:`.registration`,
DESIGN §6).

:func:`window_equations`: one track's window of looks as whitened linear equations in the
track's own errors (eliminated by the registration) and the sensors' biases.

A confirmed ballistic track's trajectory is six unknowns for its whole midcourse (its
position and velocity at one time: gravity does the rest), but a window of
``registration_window_s`` eliminates them in that window alone, so each window throws
away what ties it to the track's other windows: the same object seen by one pair of
satellites now and another pair a minute later. With ``registration_track_memory_s`` > 0
the registration keeps each ballistic track's *arc*: the normal equations of its accepted
windows in that track's state error at its last window (:class:`Arc`), carried along the
trajectory by the state-transition matrix of the tracker's motion model (point mass +
J2, no drag: the tracker calls a track ballistic above the drag layer), and eliminates the
state once over all of them (:func:`.registration_sites.joint_window`, as a hot-spot
site's position is).

The arc's equations are re-expressed at each window in the state error about the track's
own current state (the track follows the object to tens of metres), so the model stays
linear however long the arc is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .dynamics import gravity, gravity_gradient, propagate
from .measurement import predict_los
from .registration_looks import Looks
from .registration_sites import (
    MIN_LOOKS,
    SiteNormals,
    SiteWindow,
    _cross,
    earth_fixed_positions,
    joint_window,
)

ARC_PRIOR_M = 10_000.0  # m per axis: prior sigma of an arc's position error (weak)
ARC_PRIOR_MPS = 100.0  # m/s per axis: prior sigma of its velocity error (weak)
MAX_ARCS = 256  # ballistic arcs remembered (the least recently extended is forgotten)
ARC_MAX_GAP_S = 120.0  # s between two windows of a track beyond which its arc restarts


def ballistic_positions(x: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Positions (n, 3) ECI m of a target with state ``x`` (9,) ECI ``dt`` (n,) s away,
    gravity (plus the state's acceleration, zero when ballistic) to third order in dt
    (error < 1 m over 20 s in orbit)."""
    r, v = x[:3], x[3:6]
    g = gravity(r) + x[6:9]
    jerk = gravity_gradient(r) @ v
    d = dt[:, None]
    return r + v * d + 0.5 * g * d**2 + jerk * d**3 / 6.0


def window_equations(
    looks: Looks,
    x: np.ndarray,
    t_now: float,
    theta: np.ndarray,
    fixed: bool,
    thrusting: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """One track's window of ``looks`` as whitened equations ``y = A ds + G dtheta + N(0,
    I)`` about the track's state ``x`` (9,) ECI at data time ``t_now`` s, the looks
    corrected by every sensor's bias ``theta`` (S, 3) rad: the nuisance ``ds`` is the
    track's position error (``fixed``: a hot spot turning with the Earth), else its
    position and velocity errors (and its thrust's, ``thrusting``). Returns (A, G, y,
    the sensors ``G``'s columns belong to), or None for fewer than two sensors or
    ``MIN_LOOKS`` looks, or a look beyond 60 degrees of its predicted line of sight."""
    times, sensors, positions, m, sigmas = looks
    n = sensors.size
    seen = np.bincount(sensors)  # the sensors in order and each look's rank (np.unique's)
    uniq = np.flatnonzero(seen)
    if uniq.size < 2 or n < MIN_LOOKS:
        return None
    inv = (np.cumsum(seen > 0) - 1)[sensors]
    dt = times - t_now
    p = earth_fixed_positions(x[:3], dt) if fixed else ballistic_positions(x, dt)
    c = m - _cross(theta[sensors], m)
    c /= np.sqrt(np.add.reduce(c * c, axis=1))[:, None]  # np.linalg.norm's sum
    u, rho, E = predict_los(p, positions)
    den = np.einsum("ni,ni->n", u, c)
    if (den <= 0.5).any():
        return None
    inv_sig = 1.0 / sigmas
    y = (np.einsum("nki,ni->nk", E, c) / den[:, None] * inv_sig[:, None]).reshape(-1)
    Hp = E / rho[:, None, None] * inv_sig[:, None, None]  # (n, 2, 3)
    cols = [Hp] if fixed else [Hp, Hp * dt[:, None, None]]
    if thrusting:
        cols.append(0.5 * Hp * (dt**2)[:, None, None])
    A = np.concatenate(cols, axis=2).reshape(2 * n, -1)
    J = np.stack([_cross(u, E[:, 0]), _cross(u, E[:, 1])], axis=1) * inv_sig[:, None, None]
    G = np.zeros((n, 2, uniq.size, 3))
    G[np.arange(n), :, inv, :] = J
    return A, G.reshape(2 * n, 3 * uniq.size), y, uniq


def moving_equations(
    windows: list[tuple[Looks, np.ndarray, float, bool]],
    theta: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None]:
    """:func:`window_equations` of moving targets' windows (``(looks, the track's state x
    (9,) ECI, t_now s, thrusting)`` each; not Earth-fixed) about the same biases
    ``theta`` (S, 3) rad, numpy over all their looks at once: every step is per look (the
    same floats as one window at a time) but the equations' assembly, per window."""
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = []
    use, ranks = [], []
    for looks, *_ in windows:
        seen = np.bincount(looks.sensors)  # the sensors in order and each look's rank
        uniq = np.flatnonzero(seen)
        ok = uniq.size >= 2 and looks.sensors.size >= MIN_LOOKS
        out.append(None)
        if ok:
            use.append(len(out) - 1)
            ranks.append((uniq, (np.cumsum(seen > 0) - 1)[looks.sensors]))
    if not use:
        return out
    picked = [windows[i] for i in use]
    cols = [np.concatenate(c) for c in zip(*(w[0] for w in picked), strict=True)]
    times, sensors, positions, m, sigmas = cols
    n = np.array([w[0].sensors.size for w in picked])
    end = np.cumsum(n)
    of = np.repeat(np.arange(n.size), n)
    X = np.array([w[1] for w in picked], float)
    dt = times - np.array([w[2] for w in picked])[of]
    p = _ballistic_many(X, dt, of)
    c = m - _cross(theta[sensors], m)
    c /= np.sqrt(np.add.reduce(c * c, axis=1))[:, None]  # np.linalg.norm's sum
    u, rho, E = predict_los(p, positions)
    den = np.einsum("ni,ni->n", u, c)
    wide = np.bincount(of[den <= 0.5], minlength=n.size)
    inv_sig = 1.0 / sigmas
    y = np.einsum("nki,ni->nk", E, c) / den[:, None] * inv_sig[:, None]
    Hp = E / rho[:, None, None] * inv_sig[:, None, None]  # (N, 2, 3)
    Hv = Hp * dt[:, None, None]
    Ha = 0.5 * Hp * (dt**2)[:, None, None] if any(w[3] for w in picked) else Hp
    J = np.stack([_cross(u, E[:, 0]), _cross(u, E[:, 1])], axis=1) * inv_sig[:, None, None]
    for j, (i, (uniq, inv)) in enumerate(zip(use, ranks, strict=True)):
        if wide[j]:
            continue  # a look beyond 60 degrees of its predicted line of sight
        a, b, k = end[j] - n[j], end[j], n[j]
        parts = [Hp[a:b], Hv[a:b], Ha[a:b]] if picked[j][3] else [Hp[a:b], Hv[a:b]]
        A = np.concatenate(parts, axis=2).reshape(2 * k, -1)
        G = np.zeros((k, 2, uniq.size, 3))
        G[np.arange(k), :, inv, :] = J[a:b]
        out[i] = (A, G.reshape(2 * k, 3 * uniq.size), y[a:b].reshape(-1).copy(), uniq)
    return out


def _ballistic_many(X: np.ndarray, dt: np.ndarray, of: np.ndarray) -> np.ndarray:
    """:func:`ballistic_positions` of the states ``X`` (W, 9) at their looks, ``dt`` (N,)
    s from the state of window ``of`` (N,): the same floats, gravity and its gradient
    evaluated once per window."""
    r, v = X[:, :3], X[:, 3:6]
    g = gravity(r) + X[:, 6:9]
    grad = gravity_gradient(r)
    jerk = np.array([grad[w] @ v[w] for w in range(X.shape[0])])
    d = dt[:, None]
    return r[of] + v[of] * d + 0.5 * g[of] * d**2 + jerk[of] * d**3 / 6.0


def _arc_prior() -> np.ndarray:
    """Prior information (6, 6) of an arc's state error: 1/m^2 and 1/(m/s)^2."""
    return np.diag([ARC_PRIOR_M**-2] * 3 + [ARC_PRIOR_MPS**-2] * 3)


@dataclass(slots=True)
class Arc:
    """One ballistic track's accepted windows: ``normals`` in its state error (6,) (m,
    m/s, ECI) at data time ``t_s`` about the track's state ``x`` (6,) ECI then."""

    t_s: float
    x: np.ndarray
    normals: SiteNormals

    def moved(self, t_s: float, x: np.ndarray) -> SiteNormals:
        """The equations in the state error at data time ``t_s`` about the state ``x``
        (6,): the arc's reference state propagated there (RK4 with its transition matrix
        ``Phi``), the old error ``e = Phi^-1 (e' - c)`` with ``c`` the propagated reference
        less ``x``. Terms in the biases alone are dropped: they cancel in what a window
        adds (the new Schur complement less the old)."""
        nrm = self.normals
        x9 = np.concatenate([self.x, np.zeros(3)])[None]
        ref, phi = propagate(x9, t_s - self.t_s)
        T = np.linalg.inv(phi[0, :6, :6])
        d = T @ (ref[0, :6] - x)
        C = T.T @ nrm.C @ T
        B = {k: T.T @ v for k, v in nrm.B.items()}
        b = T.T @ (nrm.b + nrm.C @ d)
        prior = T.T @ nrm.prior @ T
        return SiteNormals(0.5 * (C + C.T), b, B, nrm.windows, nrm.t_s, 0.5 * (prior + prior.T))


def arc_window(
    arc: Arc | None,
    memory_s: float,
    x: np.ndarray,
    t_now: float,
    times: np.ndarray,
    sensors: np.ndarray,
    positions: np.ndarray,
    los: np.ndarray,
    sigmas: np.ndarray,
    theta: np.ndarray,
) -> SiteWindow | None:
    """A ballistic track's window of n looks (data times (n,) s, sensor indices (n,),
    sensor positions (n, 3) m ECI, measured unit lines of sight (n, 3) uncorrected, sigmas
    (n,) rad), the track's state ``x`` (9,) ECI at ``t_now`` s (after its last look),
    given its earlier windows ``arc`` (None: none) faded by ``memory_s`` and every
    sensor's bias ``theta`` (S, 3) rad: the state error eliminated over this window and
    the earlier ones (:func:`.registration_sites.joint_window`). None if a look is beyond
    60 degrees of its predicted line of sight. Raises ``LinAlgError`` on singular
    equations."""
    x = np.asarray(x, float)
    if arc is None:
        nrm = SiteNormals(np.array(_arc_prior()), np.zeros(6), {}, 0, 0.0, _arc_prior())
    else:
        nrm = arc.moved(t_now, x[:6]).faded(t_now, memory_s)
    dt = times - t_now
    u, rho, E = predict_los(ballistic_positions(x, dt), positions)
    den = np.einsum("ni,ni->n", u, los)
    if np.any(den <= 0.5):
        return None
    inv_sig = 1.0 / sigmas
    Hp = E / rho[:, None, None] * inv_sig[:, None, None]  # (n, 2, 3)
    A = np.concatenate([Hp, Hp * dt[:, None, None]], axis=2).reshape(-1, 6)
    y = (np.einsum("nki,ni->nk", E, los) / den[:, None] * inv_sig[:, None]).reshape(-1)
    J = np.stack([_cross(u, E[:, 0]), _cross(u, E[:, 1])], axis=1) * inv_sig[:, None, None]
    dof = 2 * sensors.size - (6 if nrm.windows == 0 else 0)
    return joint_window(nrm, A, y, J, sensors, theta, dof)


class Arcs:
    """The arcs of the ballistic tracks (by track key), bounded by ``MAX_ARCS``."""

    def __init__(self) -> None:
        self._arcs: dict[int, Arc] = {}

    def get(self, key: int, t_s: float) -> Arc | None:
        """Track ``key``'s arc, None if it has none or its last window is more than
        ``ARC_MAX_GAP_S`` before data time ``t_s`` (then it is forgotten)."""
        arc = self._arcs.get(key)
        if arc is not None and t_s - arc.t_s > ARC_MAX_GAP_S:
            del self._arcs[key]
            return None
        return arc

    def keep(self, key: int, t_s: float, x: np.ndarray, sw: SiteWindow) -> None:
        """Track ``key``'s arc after its accepted window ``sw`` (data time ``t_s``, the
        track's state ``x`` (9,) then)."""
        self._arcs.pop(key, None)
        if len(self._arcs) >= MAX_ARCS:
            del self._arcs[min(self._arcs, key=lambda k: self._arcs[k].t_s)]
        self._arcs[key] = Arc(t_s, np.array(x[:6], float), sw.normals(t_s))

    def solve(
        self,
        key: int,
        x: np.ndarray | None,
        t_s: float,
        looks: Looks,
        theta: np.ndarray,
        memory_s: float,
        take: Callable[[SiteWindow], bool],
    ) -> bool:
        """Track ``key``'s window of ``looks`` (:func:`arc_window`), the track's
        state ``x`` (9,) at its end ``t_s`` (None, or fewer than ``MIN_LOOKS`` looks:
        nothing to solve), with its arc: ``take`` applies what it adds to the biases
        ``theta`` (S, 3) rad (True if consistent); a window inconsistent with the arc is
        tried alone (the arc restarts from it), one still inconsistent ends the arc. False
        if the equations were singular (nothing applied)."""
        if x is None or looks.times.size < MIN_LOOKS:
            return True
        arc = self.get(key, t_s)
        for prior in (arc, None) if arc is not None else (None,):
            try:
                sw = arc_window(prior, memory_s, x, t_s, *looks, theta)
            except np.linalg.LinAlgError:
                self.drop(key)
                return False
            if sw is None:
                break
            if take(sw):
                self.keep(key, t_s, x, sw)
                return True
        self.drop(key)
        return True

    def drop(self, key: int) -> None:
        """Forget track ``key``'s arc."""
        self._arcs.pop(key, None)

    def prune(self, t_s: float) -> None:
        """Forget the arcs last extended more than ``ARC_MAX_GAP_S`` before ``t_s``."""
        for key in [k for k, a in self._arcs.items() if t_s - a.t_s > ARC_MAX_GAP_S]:
            del self._arcs[key]
