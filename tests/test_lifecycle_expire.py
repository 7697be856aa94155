"""The expiry test (Lifecycle.expire) looks one by one only at the tracks its vectorised
screen (lifecycle._unsettled) leaves: on tracks drawn around every threshold (quiet times
of exactly the coast and delete limits, sigmas at the soft and hard limits, heights at the
impact and ghost depths, NaN), each track's statuses and flags come out as the per-track
rules of the life cycle give them, written out here independently."""

from __future__ import annotations

import numpy as np

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import NS_PER_S, TrackStatus
from tracklayer.fusion.tracker.lifecycle import Lifecycle
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import Mode, Track

_STATUSES = (TrackStatus.TENTATIVE, TrackStatus.CONFIRMED, TrackStatus.COASTING)
_MODES = (Mode.BOOST, Mode.BALLISTIC, Mode.DRAG)


def _expected(trk: Track, t_ns: int, h: float, sigma: float, cfg: FusionConfig):
    """(status, uncertain, deleted) after one expiry test, by the life cycle's rules."""
    status, uncertain = trk.status, trk.uncertain
    quiet = (t_ns - trk.last_update_ns) / NS_PER_S
    if status == TrackStatus.TENTATIVE:
        age = (t_ns - trk.created_ns) / NS_PER_S
        gone = quiet > cfg.tentative_timeout_s or (
            age > cfg.tentative_max_age_s and not trk.earth_fixed
        )
        gone = gone or h < -50_000.0  # a ghost deep underground
    else:
        soft = cfg.max_boost_position_sigma_m
        if trk.mode == Mode.BOOST:
            limit = 10.0 * soft
            if sigma > soft and not uncertain:
                uncertain = True
                if status == TrackStatus.CONFIRMED:
                    status = TrackStatus.COASTING
        else:
            limit = cfg.max_position_sigma_m
        gone = quiet > cfg.delete_after_s or sigma > limit or h < -2_000.0  # impacted
        if not gone and status == TrackStatus.CONFIRMED and quiet > cfg.coast_after_s:
            status = TrackStatus.COASTING
    return (TrackStatus.DELETED if gone else status), uncertain, gone


def test_expiry_changes_exactly_what_the_rules_change():
    cfg = FusionConfig()
    rng = np.random.default_rng(4)
    t_ns = 5_000 * NS_PER_S
    quiet_s = [0.0, 1.0, cfg.coast_after_s, cfg.coast_after_s + 1e-9, cfg.tentative_timeout_s,
               cfg.delete_after_s, cfg.delete_after_s + 1e-9, 100.0]  # fmt: skip
    soft, hard = cfg.max_boost_position_sigma_m, cfg.max_position_sigma_m
    sigmas = [10.0, hard, np.nextafter(hard, np.inf), soft, np.nextafter(soft, np.inf),
              10.0 * soft, 11.0 * soft, np.nan]  # fmt: skip
    heights = [5.0e5, 0.0, -2_000.0, np.nextafter(-2_000.0, -np.inf), -50_000.0, -60_000.0, np.nan]
    n = 3_000
    rows = StateRows()
    tracks = []
    for k in range(n):
        quiet_ns = int(round(quiet_s[rng.integers(len(quiet_s))] * NS_PER_S))
        trk = Track(key=k, created_ns=t_ns - int(rng.integers(0, 400)) * NS_PER_S,
                    last_update_ns=t_ns - quiet_ns)  # fmt: skip
        trk.status = _STATUSES[rng.integers(3)]
        trk.mode = _MODES[rng.integers(3)]
        trk.uncertain = bool(rng.random() < 0.3)
        trk.earth_fixed = bool(rng.random() < 0.2)
        rows.append(np.zeros(9), np.eye(9), trk, False, t_ns)
        tracks.append(trk)
    height = np.array(heights)[rng.integers(len(heights), size=n)]
    sigma = np.array(sigmas)[rng.integers(len(sigmas), size=n)]
    want = [_expected(t, t_ns, h, s, cfg) for t, h, s in zip(tracks, height, sigma, strict=True)]
    life = Lifecycle(cfg, rows)
    life.expire(tracks, t_ns, height, sigma)
    got = [(t.status, t.uncertain, t.deleted) for t in tracks]
    assert got == want
    changed = sum(1 for t, w in zip(tracks, want, strict=True) if w[2] or t.status_changed)
    assert 0 < changed < n  # both kinds present: the screen had tracks to skip and to keep
