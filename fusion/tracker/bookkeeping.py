"""Bookkeeping of the tracks one frame updated (after the batched EKF update).

Per updated track: counters, hit bins and the NIS window (columns of the rows, written for
all of them at once: :meth:`.rows.StateRows.remember`), sensors seen, the NIS fades (columns
too), the look kept for the burnout replay and the mode test it feeds (:mod:`.modes`),
recovery from coasting (:mod:`.lifecycle`) and the launch samples (:mod:`.reports`); then
the mode changes the updates call for. Two loops over the K updated tracks, in track row
order (the mode bookkeeping first, :meth:`.modes.MotionModes.observe_updates`, whose thrust
inflation a recovery reads; then the counters): the values each step reads are taken from
the frame's arrays once, as Python numbers (the same floats as indexing them one by one),
and the states the burnout replay may need are gathered once per frame
(:meth:`.modes.MotionModes.keep_bright`), so a frame of a dense raid costs a few
microseconds of Python per updated track rather than tens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..domain import NS_PER_S, SensorFrame, TrackStatus
from ..dynamics import POS
from .modes import INTENSITY_REFERENCE_RANGE_M
from .track import Look, Mode, Track, seen_horizon_ns

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .tracker import Tracker, _Assigned

HELD_SENSORS = 3  # satellites that must have updated a track ...
HELD_WITHIN_NS = 5 * NS_PER_S  # ... this recently for its detections to teach the view


def book_updates(
    tracker: Tracker,
    frame: SensorFrame,
    pairs: _Assigned,
    nis: np.ndarray,
    trks: list[Track] | None = None,
) -> None:
    """Bookkeeping of the tracks of ``pairs``' rows (``trks``, when the caller has them)
    that ``frame`` updated (``nis`` (>= K,): their NIS first), then the mode changes
    their updates call for (plume burnouts, thrust reopened)."""
    gating, _, upd_rows, track_idx, det_idx = pairs
    rows = tracker._rows
    modes, lifecycle, reports = tracker._modes, tracker._lifecycle, tracker._reports
    t_ns = frame.time_ns
    second = t_ns // NS_PER_S
    sensor = frame.sensor_id
    if trks is None:
        trks = [rows.owners[r].track for r in upd_rows.tolist()]
    k_n = len(trks)
    # is_bright's test, in the same Python-float arithmetic as numpy's scalars
    scale = INTENSITY_REFERENCE_RANGE_M
    threshold = modes.config.boost_intensity_threshold
    intensity = frame.intensity[det_idx].tolist()
    rng = gating.rho[track_idx].tolist()
    bright = [i * (r / scale) ** 2 >= threshold for i, r in zip(intensity, rng, strict=True)]
    los, position, det_l = frame.los, frame.position, det_idx.tolist()
    sigma = frame.sigma[det_idx].tolist()

    def dark_look(k: int) -> Look:
        return Look(t_ns, position, los[det_l[k]], sigma[k], False)

    nis_k = nis[:k_n]
    nis_l = nis_k.tolist()
    rows.remember(upd_rows, nis_k, second)  # NIS window and hit bins: columns
    changes = modes.observe_updates(trks, nis_l, bright, t_ns, dark_look, upd_rows, nis_k)
    tracker._updated.extend(trks)
    launching: list[Track] = []
    coasting, confirmed, boost = TrackStatus.COASTING, TrackStatus.CONFIRMED, Mode.BOOST
    existence = tracker._existence
    horizon = seen_horizon_ns(t_ns, tracker.config.confirm_n)
    held: list[bool] = []  # well held before this update: its detection teaches the view
    recent = t_ns - HELD_WITHIN_NS
    for trk in trks:
        seen = trk.sensors_seen  # kept in order of the latest update (below)
        if existence is not None:
            # held: confirmed and HELD_SENSORS satellites updated it within HELD_WITHIN_NS
            # (its range is held, so its detection tells where the sensors see); the
            # newest entries first (each update moves its satellite to the end of
            # sensors_seen), so a held track is known after three (inlined: per update)
            is_held = False
            if trk.status == confirmed:
                n_recent = 0
                for seen_ns in reversed(seen.values()):
                    if seen_ns > recent:
                        n_recent += 1
                        if n_recent >= HELD_SENSORS:
                            is_held = True
                            break
            held.append(is_held)
        trk.update_count += 1
        trk.last_update_ns = t_ns
        trk.updated_now = True
        if sensor in seen:
            del seen[sensor]
        seen[sensor] = t_ns
        if seen[next(iter(seen))] <= horizon:  # the oldest is no longer read: drop
            forget_seen(seen, horizon)
        trk.report.since.add(sensor)
        if trk.status == coasting:  # (after observe_updates: its inflation counts)
            lifecycle.recover(trk)
        if trk.mode == boost:
            fit = trk.launch
            if fit.enabled and not fit.final:  # (a final fit takes no samples)
                launching.append(trk)
    if existence is not None:  # the sensors' view limits, from what they see
        existence.learn(frame.position, rows.x[upd_rows[held], POS])
    reports.sample_launches(launching, t_ns)  # the rows as updated, before any burnout
    for trk, mode in changes:  # burnouts first, as their rows shift
        if mode == Mode.BALLISTIC:
            modes.burnout_from_plume(trk, t_ns)
    for trk, mode in changes:
        if mode == Mode.BOOST:
            modes.reopen_thrust(trk)


def forget_seen(seen: dict[str, int], horizon_ns: int) -> None:
    """Drop the entries of ``seen`` (a track's ``sensors_seen``, oldest first) at or
    before ``horizon_ns`` (:func:`.track.seen_horizon_ns`: no test reads them)."""
    while seen:
        oldest = next(iter(seen))
        if seen[oldest] > horizon_ns:
            return
        del seen[oldest]


def ballistic_looks(trks: list[Track], frame: SensorFrame, bits: dict[str, int]) -> list[int]:
    """Looks per sensor each track has taken in ballistic flight, this frame's counted (the
    registration's consider term, :func:`..registration_consider.widened`); else 0: the
    track's ballistic looks over the number of sensors that made them. A track keeps the
    count and its sensors as a bit mask over ``bits`` (the tracker's numbering of the
    sensors, sensor id -> ``1 << index``, grown here), so a track seen by one satellite
    after another holds two integers, not an entry per satellite."""
    sid = frame.sensor_id
    bit = bits.get(sid)
    if bit is None:
        bit = bits[sid] = 1 << len(bits)
    out = []
    for trk in trks:
        if trk.mode != Mode.BALLISTIC:
            out.append(0)
            continue
        trk.ballistic_looks += 1
        trk.ballistic_sensors |= bit
        out.append(trk.ballistic_looks // trk.ballistic_sensors.bit_count())
    return out


def renumbered(mask: int, names: tuple[str, ...], bits: dict[str, int]) -> int:
    """A ballistic-sensor ``mask`` numbered by ``names`` (bit i: ``names[i]``, another
    tracker's :attr:`~.tracker.Tracker.sensor_names`) renumbered by ``bits`` (grown)."""
    out = 0
    for i, name in enumerate(names):
        if mask >> i & 1:
            bit = bits.get(name)
            if bit is None:
                bit = bits[name] = 1 << len(bits)
            out |= bit
    return out
