"""The bias error a track's sensors share, counted once per track
(``registration_common_once``, ``fusion/registration_common.py``; DESIGN §6, *Common
rotation counted once per track, stop 25*): the variance a white-noise average of the
widened looks reports against the true variance of that average when the sensors' bias
errors share a common rotation."""

from __future__ import annotations

import numpy as np
import pytest

from tracklayer.fusion.registration_common import SharedTerms, bit_indices, sensors_of

URAD = 1e-6
SIGMA0 = 20 * URAD  # rad: one look's noise


def _covariance(m: int, own: float, common: float) -> np.ndarray:
    """Bias error covariance (3 m, 3 m) rad^2 of m sensors whose errors are a rotation
    common to them (variance ``common`` per axis) plus their own (``own``)."""
    return own * np.eye(3 * m) + common * np.kron(np.ones((m, m)), np.eye(3))


def _reported_and_true(m: int, n: int, own: float, common: float, shared: bool):
    """A target seen along one line of sight by m sensors, n looks each; the track's
    position across the line of sight is the inverse-variance average of all looks (a
    white-noise filter with negligible process noise). Returns the variance per axis it
    reports with the looks widened (own block n times; with ``shared``, also the cross
    term n times) and the true variance of that average."""
    P = _covariance(m, own, common)
    u = np.array([[0.0, 0.6, 0.8]])
    across_own = own + common  # per axis across the line of sight: (tr - u'Pu) / 2
    base = np.sqrt(SIGMA0**2 + n * across_own)
    sig = []
    for k in range(m):
        if shared:
            terms = SharedTerms(P, 1.0, np.ones(m, int))
            mask = (1 << m) - 1
            s = terms.widened(np.array([base]), u, [n], [mask], list(range(m)), (k, 25.0, 1e9))
            sig.append(float(s[0]))
        else:
            sig.append(float(base))
    w = np.array([1.0 / s**2 for s in sig]) * n  # the filter's information per sensor
    reported = 1.0 / w.sum()
    a = w / w.sum()  # each sensor's weight in the average
    true = SIGMA0**2 * float(np.sum(a**2 / n)) + float(a @ (own * np.eye(m) + common) @ a)
    return reported, true


@pytest.mark.parametrize("m", [2, 3, 6])
def test_a_common_rotation_is_counted_once_per_track(m):
    """With the cross term the average reports its true variance (the common part once);
    with the own blocks alone it reports the common part divided by the sensors (NEES
    too high by up to m for a common error)."""
    n, own, common = 200, (1.0 * URAD) ** 2, (2.0 * URAD) ** 2
    reported, true = _reported_and_true(m, n, own, common, shared=True)
    np.testing.assert_allclose(reported, true, rtol=1e-9)
    alone, true_alone = _reported_and_true(m, n, own, common, shared=False)
    assert alone < true_alone / (1 + 0.8 * (m - 1) * common / (common + own + SIGMA0**2 / n))


def test_independent_or_opposite_errors_change_nothing():
    """No cross covariance: nothing added. Sensors tied with opposite errors (negative
    cross covariance): nothing taken away either (kept conservative)."""
    u = np.array([[1.0, 0.0, 0.0]])
    base = np.array([30 * URAD])
    for common in (0.0, -((1.0 * URAD) ** 2)):
        P = _covariance(2, (3 * URAD) ** 2, common)
        terms = SharedTerms(P, 1.0, np.ones(2, int))
        assert terms.widened(base, u, [100], [0b11], [0, 1], (0, 25.0, 100.0))[0] == base[0]


def test_only_ballistic_tracks_of_several_registered_sensors_are_widened():
    """A track at or below the base count (not ballistic), a track of one sensor, or whose
    other sensor has no accepted window (left as received) keeps its sigma; the count is
    clipped like the own term's."""
    P = _covariance(3, (1 * URAD) ** 2, (2 * URAD) ** 2)
    u = np.array([[0.0, 0.0, 1.0]] * 5)
    base = np.full(5, 30 * URAD)
    terms = SharedTerms(P, 1.0, np.array([1, 1, 0]))
    looks, masks = [25, 200, 200, 200, 1000], [0b011, 0b001, 0b101, 0b011, 0b011]
    out = terms.widened(base, u, looks, masks, [0, 1, 2], (0, 25.0, 100.0))
    assert out[0] == base[0] and out[1] == base[1] and out[2] == base[2]
    cross = (2 * URAD) ** 2  # sensor 1's covariance with sensor 0, per axis across
    np.testing.assert_allclose(out[3] ** 2, base[3] ** 2 + 100 * cross, rtol=1e-12)
    assert out[4] == out[3]  # 1,000 looks clipped at 100
    half = SharedTerms(P, 0.5, np.array([1, 1, 0]))  # the bias scale shrinks the term
    out = half.widened(base, u, looks, masks, [0, 1, 2], (0, 25.0, 100.0))
    np.testing.assert_allclose(out[3] ** 2, base[3] ** 2 + 50 * cross, rtol=1e-12)


def test_tracker_bits_map_to_registration_indices():
    bits = {"sat-b": 1 << 0, "sat-c": 1 << 1, "sat-a": 1 << 2}
    of_bit = bit_indices(bits, {"sat-a": 0, "sat-b": 1})
    assert of_bit == [1, None, 0]
    assert sensors_of(0b111, of_bit) == [1, 0] and sensors_of(0b010, of_bit) == []
