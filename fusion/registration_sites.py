"""Hot-spot sites of the sensor registration (:mod:`.registration`, DESIGN §6).

A hot spot is an Earth-fixed infrared source. The tracker follows it with short-lived
tentative tracks (about 25 s each, one after another), so the registration gathers a hot
spot's looks by *site*: its Earth-fixed position (that of the first track that saw it),
matched within ``SITE_MATCH_M``; the successive tracks of one hot spot so fill one window.

A site's position is one unknown for the whole run, so each site also keeps the normal
equations of its accepted windows (:class:`SiteNormals`): the registration eliminates the
position once over *all* of them instead of once per window, so looks across windows (the
satellites have moved) and single-satellite windows constrain the biases too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .constants import OMEGA_EARTH
from .dynamics import cross_omega, ellipsoid_height
from .measurement import predict_los

MIN_LOOKS = 4  # detections a window (a track's, a site's or an arc's) needs
SITE_MATCH_M = 5_000.0  # m; hot-spot looks within this of a known site are that site's
MAX_SITES = 512  # hot-spot sites remembered (the least recently seen is forgotten)
SITE_PRIOR_M = 5_000.0  # m per axis: prior sigma of a site's offset from its reference
RESTING_HEIGHT_M = 5_000.0  # m; a dim tentative track this low ...
RESTING_SPEED_MPS = 300.0  # m/s; ... and this slow over the ground is a hot spot


def resting(x: np.ndarray) -> bool:
    """A state (9,) ECI at rest on the ground: within ``RESTING_HEIGHT_M`` of the
    ellipsoid and slower than ``RESTING_SPEED_MPS`` relative to the Earth (a hot spot's
    tentative track, before or without the tracker's Earth-fixed mark)."""
    r, v = x[:3], x[3:6]
    if abs(float(ellipsoid_height(r))) > RESTING_HEIGHT_M:
        return False
    return float(np.linalg.norm(v - cross_omega(r))) < RESTING_SPEED_MPS


def earth_fixed_positions(r: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Positions (n, 3) ECI m, ``dt`` (n,) s away, of an Earth-fixed point at ECI ``r``
    (3,) m now (it turns with the Earth about z)."""
    a = OMEGA_EARTH * dt
    ca, sa = np.cos(a), np.sin(a)
    return np.stack([ca * r[0] - sa * r[1], sa * r[0] + ca * r[1], np.full_like(dt, r[2])], 1)


@dataclass(slots=True)
class SiteNormals:
    """The whitened normal equations of one site's accepted windows, in the linear model
    ``y = A s + sum_k G_k theta_k + N(0, I)``: ``s`` (3,) m, the site's Earth-fixed offset
    from its reference position; ``theta_k`` (3,) rad, sensor ``k``'s bias (ECI);
    ``y``, the looks' gnomonic residuals at ``s = 0``, ``theta = 0`` over their sigma."""

    C: np.ndarray = field(default_factory=lambda: np.eye(3) / SITE_PRIOR_M**2)  # A'A + prior, 1/m^2
    b: np.ndarray = field(default_factory=lambda: np.zeros(3))  # A'y, 1/m
    B: dict[int, np.ndarray] = field(default_factory=dict)  # sensor -> A'G_k (3, 3), 1/(m rad)
    windows: int = 0  # accepted windows
    t_s: float = 0.0  # data time of the last accepted window, s
    prior: np.ndarray = field(default_factory=lambda: np.eye(3) / SITE_PRIOR_M**2)  # in C
    # the biases' own block, kept only to carry the equations forward by the drift
    # (:meth:`predicted`; None: not kept): G'G (3 m, 3 m) 1/rad^2 and G'y (3 m,) 1/rad on
    # the sensors of ``B`` in sorted order
    D: np.ndarray | None = None
    g: np.ndarray | None = None

    @classmethod
    def drifting(cls) -> SiteNormals:
        """Empty equations that keep the biases' block (for :meth:`predicted`)."""
        return cls(D=np.zeros((0, 0)), g=np.zeros(0))

    def faded(self, t_s: float, memory_s: float) -> SiteNormals:
        """These equations with their data weighted by ``exp(-(t_s - self.t_s) /
        memory_s)`` (the biases drift: old looks tie today's biases less); the prior
        stays. (The unknown need not be a site's: :mod:`.registration_tracks` keeps a
        ballistic track's state error (6,) in them.)"""
        if self.windows == 0:
            return self
        f = float(np.exp(-max(t_s - self.t_s, 0.0) / memory_s))
        prior = self.prior
        B = {k: f * v for k, v in self.B.items()}
        C = prior + f * (self.C - prior)
        D = None if self.D is None else f * self.D
        g = None if self.g is None else f * self.g
        return SiteNormals(C, f * self.b, B, self.windows, self.t_s, prior, D, g)

    def predicted(self, t_s: float, q_rad2_per_s: float) -> SiteNormals:
        """These equations carried forward to data time ``t_s`` (s) by the biases' random
        walk of ``q_rad2_per_s`` (rad^2/s per axis): the information filter's prediction of
        the joint (unknown, biases) equations, ``Y' = Y - Y_:b (Q^-1 + Y_bb)^-1 Y_b:`` with
        ``Q = q dt I``, so old looks tie today's biases as much as the walk since allows
        (a constant bias, ``q = 0``, keeps them whole). Needs the biases' block
        (:meth:`drifting`)."""
        dt = t_s - self.t_s
        if self.D is None or self.g is None:
            raise ValueError("predicted: these equations do not keep the biases' block")
        if self.windows == 0 or not self.B or dt <= 0.0 or q_rad2_per_s <= 0.0:
            return self
        Bk = self.block(np.array(sorted(self.B)))
        n = Bk.shape[1]
        R = np.eye(n) / (q_rad2_per_s * dt) + self.D
        X = np.linalg.solve(R, np.concatenate([Bk.T, self.D, self.g[:, None]], axis=1))
        K_Bt, K_D, K_g = X[:, :3], X[:, 3 : 3 + n], X[:, -1]
        C = self.C - Bk @ K_Bt
        D = self.D - self.D @ K_D
        B_new = Bk - Bk @ K_D
        B = {k: B_new[:, 3 * j : 3 * j + 3] for j, k in enumerate(sorted(self.B))}
        b, g = self.b - Bk @ K_g, self.g - self.D @ K_g
        return SiteNormals(0.5 * (C + C.T), b, B, self.windows, t_s, self.prior, 0.5 * (D + D.T), g)

    def block(self, sensors: np.ndarray) -> np.ndarray:
        """``A'G`` (m, 3 len(sensors)) on the given sensor indices (zero where unseen)."""
        zero = np.zeros((self.b.size, 3))
        return np.concatenate([self.B.get(int(k), zero) for k in sensors], axis=1)

    def offset(self, theta: np.ndarray) -> np.ndarray:
        """The site's offset estimate (3,) m given every sensor's bias ``theta`` (S, 3) rad."""
        if not self.B:
            return np.zeros(3)
        ks = np.array(sorted(self.B))
        rhs = self.b - self.block(ks) @ theta[ks].ravel()
        return np.linalg.solve(self.C, rhs)


class Sites:
    """Known hot-spot sites in an Earth-fixed frame (ECI rotated back by the Earth's turn
    since the first site's data time; m), each with its window key (negative)."""

    def __init__(self) -> None:
        self.position = np.zeros((0, 3))  # (M, 3) m, Earth-fixed
        self.keys = np.zeros(0, int)  # (M,) window keys, -1, -2, ...
        self.normals: dict[int, SiteNormals] = {}  # key -> its accepted windows' equations
        self._seen = np.zeros(0)  # (M,) s: data time of each site's last track look
        self._next = 0
        self._t0_s: float | None = None  # data time at which the Earth-fixed frame meets ECI

    def key(self, x: np.ndarray, t_s: float) -> int:
        """Window key of the hot spot at ECI state ``x`` (9,) at data time ``t_s`` (s): the
        known site within ``SITE_MATCH_M``, else a new one (replacing the least recently
        seen beyond ``MAX_SITES``)."""
        if self._t0_s is None:
            self._t0_s = t_s
        e = _turn(np.asarray(x[:3], float)[None], -OMEGA_EARTH * (t_s - self._t0_s))[0]
        if self.position.shape[0]:
            diff = self.position - e
            d2 = np.einsum("mi,mi->m", diff, diff)
            j = int(np.argmin(d2))
            if d2[j] <= SITE_MATCH_M**2:
                self._seen[j] = t_s
                return int(self.keys[j])
        key = -1 - self._next
        self._next += 1
        if self.position.shape[0] >= MAX_SITES:
            j = int(np.argmin(self._seen))
            self.normals.pop(int(self.keys[j]), None)
            self.position[j], self.keys[j], self._seen[j] = e, key, t_s
        else:
            self.position = np.vstack([self.position, e])
            self.keys = np.append(self.keys, key)
            self._seen = np.append(self._seen, t_s)
        return key

    def frame(self, key: int, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Site ``key``'s reference position (3,) m, Earth-fixed, and the rotations
        (n, 3, 3) from Earth-fixed to ECI at data times ``t_s`` (n,) s; None if the site
        was forgotten."""
        j = np.flatnonzero(self.keys == key)
        if j.size == 0 or self._t0_s is None:
            return None
        a = OMEGA_EARTH * (np.asarray(t_s, float) - self._t0_s)
        c, s = np.cos(a), np.sin(a)
        rot = np.zeros((a.size, 3, 3))
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = c, -s, s, c
        rot[:, 2, 2] = 1.0
        return self.position[int(j[0])].copy(), rot


def _turn(p: np.ndarray, angle: float) -> np.ndarray:
    """Positions (n, 3) rotated by ``angle`` (rad) about the z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2]], axis=1)


@dataclass(slots=True)
class SiteWindow:
    """What one hot-spot window adds to the biases of the sensors ``union`` (its looks'
    and its site's earlier ones, sorted indices), given the site's earlier windows:
    information ``info`` (3 k, 3 k) 1/rad^2 and gradient ``eta`` (3 k,) 1/rad at the
    current estimate, chi-square ``chi2`` of the window at it with ``dof`` degrees of
    freedom; and the site's equations with the window added."""

    union: np.ndarray
    info: np.ndarray
    eta: np.ndarray
    chi2: float
    dof: int
    C: np.ndarray
    b: np.ndarray
    AtG: np.ndarray  # (3, 3 k): the window's A'G on ``union``
    before: SiteNormals
    GtG: np.ndarray  # (3 k, 3 k): the window's G'G on ``union``, 1/rad^2
    Gty: np.ndarray  # (3 k,): its G'y, 1/rad

    def normals(self, t_s: float) -> SiteNormals:
        """The site's equations with this window added (accepted at data time ``t_s``)."""
        before = self.before
        B = dict(before.B)
        keep = before.D is not None  # then every sensor of the union is one of B's
        for j, k in enumerate(self.union):
            blk = self.AtG[:, 3 * j : 3 * j + 3]
            if keep or int(k) in B or np.any(blk):
                B[int(k)] = B.get(int(k), 0.0) + blk
        D = g = None
        if before.D is not None and before.g is not None:
            at = np.searchsorted(self.union, np.array(sorted(before.B), int))
            idx = (3 * at[:, None] + np.arange(3)).ravel()
            D, g = self.GtG.copy(), self.Gty.copy()
            D[np.ix_(idx, idx)] += before.D
            g[idx] += before.g
        return SiteNormals(self.C, self.b, B, before.windows + 1, t_s, before.prior, D, g)


def site_window(
    nrm: SiteNormals,
    ref: np.ndarray,
    rot: np.ndarray,
    sensors: np.ndarray,
    positions: np.ndarray,
    los: np.ndarray,
    sigmas: np.ndarray,
    theta: np.ndarray,
) -> SiteWindow | None:
    """A hot-spot window of n looks (sensor indices (n,), sensor positions (n, 3) m ECI,
    measured unit lines of sight (n, 3) uncorrected, sigmas (n,) rad) of the site with
    equations ``nrm``, reference ``ref`` (3,) m Earth-fixed and rotations ``rot`` (n, 3,
    3) Earth-fixed -> ECI at the looks' times, given every sensor's bias ``theta`` (S, 3)
    rad: the site's position eliminated over this window and the earlier ones (the new
    joint Schur complement less the old one: exact for constant biases). Residuals are
    taken at the site's current position estimate and moved to its reference, so the
    equations stay linear in one unknown. None if a look is beyond 60 degrees of its
    predicted line of sight. Raises ``LinAlgError`` on singular equations."""
    s_hat = nrm.offset(theta)
    u, rho, E = predict_los(np.einsum("nij,j->ni", rot, ref + s_hat), positions)
    den = np.einsum("ni,ni->n", u, los)
    if np.any(den <= 0.5):
        return None
    inv_sig = 1.0 / sigmas
    A = np.einsum("nki,nij->nkj", E / rho[:, None, None] * inv_sig[:, None, None], rot)
    A = A.reshape(2 * sensors.size, 3)
    y = (np.einsum("nki,ni->nk", E, los) / den[:, None] * inv_sig[:, None]).reshape(-1)
    y = y + A @ s_hat  # at the reference: y = A s + G theta + noise
    J = np.stack([_cross(u, E[:, 0]), _cross(u, E[:, 1])], axis=1) * inv_sig[:, None, None]
    dof = 2 * sensors.size - (3 if nrm.windows == 0 else 0)
    return joint_window(nrm, A, y, J, sensors, theta, dof)


def joint_window(
    nrm: SiteNormals,
    A: np.ndarray,
    y: np.ndarray,
    J: np.ndarray,
    sensors: np.ndarray,
    theta: np.ndarray,
    dof: int,
) -> SiteWindow:
    """What a window of n looks adds to the biases given the earlier windows' equations
    ``nrm`` of the same unknown ``s`` (m,): its whitened residuals ``y`` (2 n,) at ``s =
    0``, ``theta = 0`` in ``y = A s + G theta + N(0, I)`` with ``A`` (2 n, m) and ``G``
    made of each look's ``J`` (n, 2, 3) on its sensor's (``sensors`` (n,)) bias; every
    sensor's bias ``theta`` (S, 3) rad; ``dof`` the window's degrees of freedom. The
    unknown is eliminated jointly (the new Schur complement less the old: exact for
    constant biases). Raises ``LinAlgError`` on singular equations."""
    n = sensors.size
    union = np.union1d(np.array(sorted(nrm.B), int), sensors)
    G = np.zeros((n, 2, union.size, 3))
    G[np.arange(n), :, np.searchsorted(union, sensors), :] = J
    G = G.reshape(2 * n, 3 * union.size)
    th = theta[union].ravel()
    AtG = A.T @ G
    B0 = nrm.block(union)
    B1, C1, b1 = B0 + AtG, nrm.C + A.T @ A, nrm.b + A.T @ y
    W0 = np.linalg.solve(nrm.C, np.concatenate([B0, nrm.b[:, None]], axis=1))
    W1 = np.linalg.solve(C1, np.concatenate([B1, b1[:, None]], axis=1))
    GtG, Gty = G.T @ G, G.T @ y
    info = GtG - B1.T @ W1[:, :-1] + B0.T @ W0[:, :-1]
    eta = Gty - B1.T @ W1[:, -1] + B0.T @ W0[:, -1]
    r = y - G @ th
    d0, d1 = nrm.b - B0 @ th, b1 - B1 @ th
    q1 = d1 @ (W1[:, -1] - W1[:, :-1] @ th)
    q0 = d0 @ (W0[:, -1] - W0[:, :-1] @ th)
    chi2 = float(r @ r - q1 + q0)
    return SiteWindow(union, info, eta - info @ th, chi2, dof, C1, b1, AtG, nrm, GtG, Gty)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (..., 3) arrays (the registration's, written out)."""
    return np.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )
