"""The bias error a track's sensors share, counted once per track (:mod:`.registration`,
DESIGN §6, *Common rotation counted once per track, stop 25*).

The consider term of :mod:`.registration_consider` widens each look by its own sensor's
bias variance, and so treats the sensors' errors as independent: a track seen by m
sensors reports the bias part of its position error as ``sum_k J_k P_kk J_k'``, with
``J_k`` (3 x 3) how sensor ``k``'s rotation moves the point where the track's rays meet.
Where the sensors' errors are correlated (a rotation common to them, seen only weakly
through the satellites' baselines, leaves positive cross covariances ``P_jk``) the true
covariance is ``sum_jk J_j P_jk J_k'``: the common part does not average out over the
sensors. The part left out, ``sum_{j != k} J_j P_jk J_k'`` (its positive part: never
narrowing), is added to the covariance a ballistic track *reports* (a consider term
that does not move the state: the filter's gain and the track's estimate stay as they
are).

``J_k``: rays from sensors at ``s_k`` to a point ``p`` (``d_k = p - s_k``, range
``rho_k``), each with the same angular noise, meet (least squares) where ``sum_k W_k (x -
p - dtheta_k x d_k) = 0`` with ``W_k = (I - u_k u_k') / rho_k^2``; so ``J_k = (sum W)^-1
W_k [d_k]_x`` up to sign (tests/test_registration_common.py triangulates rotated rays).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .registration import Registration

_EYE3 = np.eye(3)
# the bias scale (registration_consider.bias_scale) from which the term is added: where
# the data show biases of the prior's size (s = 1, the cap). Below it the widening is the
# rescaled prior's, conservative block by block, and a scene found unbiased keeps its
# reports as they were
MIN_SCALE = 1.0


def displacement_maps(position: np.ndarray, sensors: np.ndarray) -> np.ndarray:
    """``J_k`` (m, 3, 3) m/rad: how a small rotation of sensor ``k``'s lines of sight
    (rad, ECI) moves the least-squares meeting point of rays from the sensors at ECI
    ``sensors`` (m, 3) m to ``position`` (3,) m, all with the same angular noise."""
    d = position[None, :] - sensors
    rho2 = np.einsum("mi,mi->m", d, d)
    u = d / np.sqrt(rho2)[:, None]
    W = (_EYE3[None] - u[:, :, None] * u[:, None, :]) / rho2[:, None, None]
    cross = np.zeros((d.shape[0], 3, 3))  # [d]_x: [d]_x v = d x v
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -d[:, 2], d[:, 1], -d[:, 0]
    cross -= np.swapaxes(cross, 1, 2)
    return np.linalg.pinv(W.sum(axis=0)) @ W @ cross


class SharedTerms:
    """The part of the sensors' bias covariance a track's report leaves out, at one state
    of the estimator (``P`` (3 S, 3 S) rad^2 times the bias ``scale``; ``used`` (S,) the
    sensors' accepted windows: one without any is left as received, so not counted)."""

    def __init__(self, P: np.ndarray, scale: float, used: np.ndarray) -> None:
        self._P = P
        self._scale = scale
        self._used = used.copy()

    def position_term(
        self, position: np.ndarray, mask: int, of_bit: list[int | None], where: np.ndarray
    ) -> np.ndarray | None:
        """``scale sum_{j != k} J_j P_jk J_k'`` (3, 3) m^2, its positive part, for a track
        at ECI ``position`` (3,) m whose looks came from the sensors of tracker bit
        ``mask`` (``of_bit``: each bit's registration index) at their last positions
        ``where`` (S, 3) m; None with fewer than two sensors with evidence."""
        ks = [j for j in sensors_of(mask, of_bit) if self._used[j] > 0]
        if len(ks) < 2:
            return None
        J = displacement_maps(np.asarray(position, float), where[ks])
        idx = (3 * np.array(ks)[:, None] + np.arange(3)).ravel()
        m = len(ks)
        P = self._P[np.ix_(idx, idx)].reshape(m, 3, m, 3).copy()
        P[np.arange(m), :, np.arange(m), :] = 0.0  # the own blocks are in the track already
        C = np.einsum("jab,jbkc,kdc->ad", J, P, J) * self._scale
        lam, vec = np.linalg.eigh(0.5 * (C + C.T))
        if lam[-1] <= 0.0:
            return None
        return (vec * np.maximum(lam, 0.0)) @ vec.T


def sensors_of(mask: int, of_bit: list[int | None]) -> list[int]:
    """The registration's indices of the sensors in a tracker bit ``mask`` (bit ``i`` is
    the tracker's sensor ``i``; ``of_bit[i]`` its registration index, None if none)."""
    out = []
    while mask:
        low = mask & -mask
        i = low.bit_length() - 1
        if i < len(of_bit) and of_bit[i] is not None:
            out.append(int(of_bit[i]))
        mask ^= low
    return out


def bit_indices(bits: dict[str, int], index: dict[str, int]) -> list[int | None]:
    """For each tracker bit (``bits``: sensor id -> ``1 << i``) the registration index of
    its sensor (``index``: sensor id -> index), None where it has none."""
    out: list[int | None] = [None] * len(bits)
    for sid, bit in bits.items():
        out[bit.bit_length() - 1] = index.get(sid)
    return out


def report_consider(
    reg: Registration | None, bits: dict[str, int]
) -> Callable[[np.ndarray, int], np.ndarray | None] | None:
    """:meth:`.registration.Registration.report_consider` where registration is on with
    ``registration_common_once`` and the bias scale is ``MIN_SCALE``, else None (the
    reports as the filter has them)."""
    if reg is None or not reg.counts_common or reg.scale < MIN_SCALE:
        return None
    return reg.report_consider(bits)
