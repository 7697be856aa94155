"""The bias error a track's sensors share, counted once per track
(``registration_common_once``, ``fusion/registration_common.py``; DESIGN §6, *Common
rotation counted once per track, stop 25*): the maps from each sensor's rotation to the
rays' meeting point against triangulating rotated rays, and the term a report adds
against the whole covariance of that point less its sensors-alone part."""

from __future__ import annotations

import numpy as np

from tracklayer.fusion.registration_common import (
    SharedTerms,
    bit_indices,
    displacement_maps,
    sensors_of,
)
from tracklayer.sensors.ir_sensor import rotation_matrix

URAD = 1e-6
TARGET = np.array([5.9e6, 1.2e6, 3.1e6])  # m ECI: a missile in midcourse
# satellites to one side of it (a theatre seen from one direction: their rays' common
# rotation moves the meeting point most)
SATS = np.array([[7.3e6, -1.0e6, -0.5e6], [7.0e6, 0.5e6, -1.5e6], [6.5e6, -2.0e6, 0.0]])


def _meet(dirs: np.ndarray) -> np.ndarray:
    """Least-squares meeting point of rays from ``SATS`` along unit ``dirs`` (m, 3), each
    weighted by 1 / range^2 (equal angular noise)."""
    rho2 = np.sum((TARGET - SATS) ** 2, axis=1)
    W = (np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]) / rho2[:, None, None]
    return np.linalg.solve(W.sum(axis=0), np.einsum("kij,kj->i", W, SATS))


def _numerical_maps() -> np.ndarray:
    """d(meeting point)/d(sensor k's rotation) (m, 3, 3) by rotating each sensor's ray
    (central differences of 1 urad)."""
    u = (TARGET - SATS) / np.linalg.norm(TARGET - SATS, axis=1, keepdims=True)
    out = np.zeros((3, 3, 3))
    for k in range(3):
        for a in range(3):
            e = np.zeros(3)
            e[a] = URAD
            ends = []
            for sgn in (1.0, -1.0):
                d = u.copy()
                d[k] = rotation_matrix(sgn * e) @ u[k]
                ends.append(_meet(d))
            out[k, :, a] = (ends[0] - ends[1]) / (2 * URAD)
    return out


def test_the_maps_move_the_meeting_point_as_rotated_rays_do():
    np.testing.assert_allclose(np.allclose(_meet((TARGET - SATS) / np.linalg.norm(
        TARGET - SATS, axis=1, keepdims=True)), TARGET, atol=1e-3), True)  # fmt: skip
    J = displacement_maps(TARGET, SATS)
    num = _numerical_maps()
    # the same map up to sign (a covariance does not see it): m per rad, 1e-5 relative
    np.testing.assert_allclose(np.abs(J), np.abs(num), rtol=1e-5, atol=1e-5 * np.abs(num).max())
    np.testing.assert_allclose(J, -num, rtol=1e-5, atol=1e-5 * np.abs(num).max())


def test_a_report_adds_what_treating_the_sensors_alone_leaves_out():
    """Bias errors that are a common rotation (variance c per axis) plus each sensor's own
    (a): the meeting point's whole covariance is ``sum_jk J_j P_jk J_k'``; the term is the
    positive part of that less the sensors-alone part ``sum_k J_k P_kk J_k'`` (what the
    widened looks give the track), so with it the report covers the whole."""
    a, c = (1.0 * URAD) ** 2, (2.0 * URAD) ** 2
    P = a * np.eye(9) + c * np.kron(np.ones((3, 3)), np.eye(3))
    num = _numerical_maps()
    A = num.transpose(1, 0, 2).reshape(3, 9)  # d(point) / d(all biases)
    whole = A @ P @ A.T
    alone = sum(num[k] @ P[3 * k : 3 * k + 3, 3 * k : 3 * k + 3] @ num[k].T for k in range(3))
    term = SharedTerms(P, 1.0, np.ones(3, int)).position_term(TARGET, 0b111, [0, 1, 2], SATS)
    lam, vec = np.linalg.eigh(whole - alone)
    np.testing.assert_allclose(term, (vec * np.maximum(lam, 0.0)) @ vec.T, rtol=1e-4, atol=1e-6)
    assert np.all(np.linalg.eigvalsh(term + alone - whole) > -1e-6 * np.trace(whole))
    # a report without the term is too narrow along some direction (here ~110 of ~570 m^2
    # in trace: a common rotation moves the rays' meeting point by about dtheta x (p - the
    # sensors' centroid), less than each sensor's own rotation does)
    assert np.trace(term) > 0.1 * np.trace(alone)


def test_independent_errors_one_sensor_or_sensors_without_evidence_add_nothing():
    P = (2 * URAD) ** 2 * np.eye(9)
    assert (
        SharedTerms(P, 1.0, np.ones(3, int)).position_term(TARGET, 0b111, [0, 1, 2], SATS) is None
    )
    Pc = P + (2 * URAD) ** 2 * np.kron(np.ones((3, 3)), np.eye(3))
    terms = SharedTerms(Pc, 1.0, np.array([1, 1, 0]))
    assert terms.position_term(TARGET, 0b001, [0, 1, 2], SATS) is None  # one sensor
    assert terms.position_term(TARGET, 0b101, [0, 1, 2], SATS) is None  # 2: no windows
    two = terms.position_term(TARGET, 0b011, [0, 1, 2], SATS)
    half = SharedTerms(Pc, 0.5, np.array([1, 1, 0])).position_term(TARGET, 0b011, [0, 1, 2], SATS)
    np.testing.assert_allclose(half, 0.5 * two, rtol=1e-12)  # the bias scale shrinks it
    opposite = P - (1 * URAD) ** 2 * np.kron(np.ones((3, 3)), np.eye(3))
    neg = SharedTerms(opposite, 1.0, np.ones(3, int)).position_term(TARGET, 0b111, [0, 1, 2], SATS)
    assert neg is None or np.all(np.linalg.eigvalsh(neg) >= -1e-12 * np.abs(neg).max())


def test_tracker_bits_map_to_registration_indices():
    bits = {"sat-b": 1 << 0, "sat-c": 1 << 1, "sat-a": 1 << 2}
    of_bit = bit_indices(bits, {"sat-a": 0, "sat-b": 1})
    assert of_bit == [1, None, 0]
    assert sensors_of(0b111, of_bit) == [1, 0] and sensors_of(0b010, of_bit) == []
