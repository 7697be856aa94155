"""The :class:`Tracker` facade: one frame in, its reports out.

Orchestrates, per frame (the steps are listed in the package docstring): prediction of
the stacked rows (:mod:`.rows`), gating and assignment (:mod:`..association`), the
batched EKF update, initiation (:mod:`..initiation`), motion-mode changes
(:mod:`.modes`), status transitions (:mod:`.lifecycle`) and reports (:mod:`.reports`).
The tracker keeps the list of live tracks in creation order; the components share the
one :class:`.rows.StateRows`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..association import (
    Gating,
    assign_pairs,
    gate,
    gate_threshold,
    may_gate_at,
)
from ..config import FusionConfig
from ..domain import NS_PER_S, SensorFrame, TrackReport
from ..dynamics import ACC, N_STATE, POS, VEL, cross_omega, ellipsoid_height
from ..filters import update_rows
from ..initiation import Candidate, InitiationBuffer
from ..measurement import position_jacobian, predict_los, residuals
from ..registration import Registration
from ..registration_common import report_consider
from ..threads import ThreadBook
from .aliases import AliasFamilies, branch_start
from .bookkeeping import ballistic_looks as _ballistic_looks
from .bookkeeping import book_updates, renumbered
from .cloud import cloud_prior
from .crowd import CrowdHold, Surplus
from .evidence import registration_looks
from .existence import Existence
from .glide_mode import glide_transitions
from .lifecycle import Lifecycle
from .modes import MotionModes, radial_speed
from .region import Region
from .regroup import after_update, before_update
from .reports import ReportSchedule
from .rows import StateRows
from .stream import pull_to_streams
from .track import Mode, Track


class _Assigned(NamedTuple):
    """The (track, detection) pairs of one frame: K pairs, in track row order."""

    gating: Gating  # of all main rows against all detections
    pair_idx: np.ndarray  # (K,) index of each among the gating's candidate pairs
    rows: np.ndarray  # (K,) state rows of the assigned tracks
    track_idx: np.ndarray  # (K,) index of each among the gated tracks
    det_idx: np.ndarray  # (K,) detection index in the frame


class Tracker:
    """Multi-target tracker over angle-only frames (see the package docstring).

    ``fusion_id`` names the tracks ``<fusion_id>-<n>`` (n from 1, in order of first
    report, never reused). Frames must come in application order (DESIGN §6).
    """

    #: S > 1 shards: this tracker's region (class default: checkpoints from before it)
    region: Region | None = None
    #: velocity hypotheses of new boost tracks in a stream (class default: checkpoints
    #: from before them)
    _aliases: AliasFamilies | None = None
    #: young tracks in a crowd: held, or deleted as surplus (class defaults: old checkpoints)
    _crowd: CrowdHold | None = None
    _surplus: Surplus | None = None

    def __init__(
        self,
        fusion_id: str = "fusion",
        config: FusionConfig | None = None,
        region: Region | None = None,
    ) -> None:
        self.fusion_id = fusion_id
        self.config = cfg = config if config is not None else FusionConfig()
        self._t_ns: int | None = None
        self._rows = StateRows()
        self._tracks: list[Track] = []  # live tracks in creation order
        self._updated: list[Track] = []  # the tracks the current frame updated
        self._next_key = 0
        self._buffer = InitiationBuffer(cfg)
        self._gate_ballistic = gate_threshold(cfg.gate_probability)
        self._gate_boost = gate_threshold(cfg.boost_gate_probability)
        self._modes = MotionModes(cfg, self._rows)
        self._rows.noise_source = self._modes
        self._rows.max_step_s = cfg.max_step_s
        self._lifecycle = Lifecycle(cfg, self._rows)
        self._reports = ReportSchedule(fusion_id, cfg, self._rows)
        self._threads = ThreadBook()
        self.registration = Registration(cfg) if cfg.registration else None
        self._looks_per_track = self.registration is not None and (
            cfg.registration_consider_looks_max > cfg.registration_consider_looks
        )
        self._sensor_bits: dict[str, int] = {}  # sensor id -> its bit (_ballistic_looks)
        self._existence = Existence(cfg) if cfg.existence else None
        self._aliases = AliasFamilies(cfg, self._rows) if cfg.alias_hypotheses > 0 else None
        if cfg.crowd_hold_s > 0 and cfg.crowd_min_gated > 0:
            self._crowd = self._lifecycle.hold = CrowdHold(cfg)
        self._surplus = Surplus(cfg.crowd_surplus_looks) if cfg.crowd_surplus_looks else None
        # S > 1 shards (issue 14): what this tracker owns and reports (None: everything)
        self.region = region
        if region is not None:
            region.attach(self)

    # ------------------------------------------------------------------ public API
    @property
    def time_ns(self) -> int | None:
        """Data time (ns) of the last applied frame."""
        return self._t_ns

    def process(self, frame: SensorFrame) -> list[TrackReport]:
        """Apply one frame; returns the reports it caused (status changes, due reports)."""
        t_ns = int(frame.time_ns)
        if self._t_ns is not None and t_ns < self._t_ns:
            raise ValueError(
                f"time: frame at {t_ns} ns is before the tracker's data time {self._t_ns} ns"
            )
        if self.region is not None:  # hand-overs due before this frame (S > 1)
            self.region.before_frame(self)
        self._advance(t_ns)
        for trk in self._updated:
            trk.updated_now = False
        self._updated = []
        n_before, raw = len(self._tracks), frame
        if self.registration is not None:  # pointing bias removed, its uncertainty added
            frame = self.registration.correct(frame)
        unclaimed = self._associate_and_update(frame, raw)
        self._initiate(frame, unclaimed)
        # (the siblings of .aliases are new tracks the frame updated: counted once)
        touched = self._updated + [t for t in self._tracks[n_before:] if not t.updated_now]
        if self._existence is not None:
            self._look(frame, touched)
            touched = [t for t in touched if not t.deleted]
        shadow_cands = self._modes.shadow_candidates(touched, t_ns)
        self._sync_tracks(shadow_cands)
        self._modes.run_shadow_tests(shadow_cands, t_ns)
        self._run_lifecycle(t_ns)
        if self.region is not None:  # ownership: hand-overs decided, far ghosts dropped
            self.region.step(self, t_ns)
        touched = self._updated + self._lifecycle.take_status_changes()
        if self.region is not None:
            touched = self.region.reportable(touched)
        consider = report_consider(self.registration, self._sensor_bits)
        out = self._reports.due(self._tracks, touched, t_ns, consider)
        self._tracks, gone = self._lifecycle.reap(self._tracks)
        if gone:
            self._threads.forget({t.key for t in gone})
        if self.region is not None:
            self.region.after_frame(self)
        return out

    def flush(self) -> list[TrackReport]:
        """End of data: report each reported live track's unreported updates (stay live)."""
        if self._t_ns is None:
            return []
        tracks = self._tracks if self.region is None else self.region.reportable(self._tracks)
        consider = report_consider(self.registration, self._sensor_bits)
        return self._reports.flush(tracks, self._t_ns, consider)

    def live_reports(self) -> list[TrackReport]:
        """Latest report of each live track that has been reported, by track number."""
        tracks = self._tracks if self.region is None else self.region.reportable(self._tracks)
        live = [t for t in tracks if t.report.last is not None and not t.deleted]
        live.sort(key=lambda t: t.report.number)
        return [t.report.last for t in live]

    # ------------------------------------------------------------------ prediction
    def _advance(self, t_ns: int) -> None:
        """Move the data time to ``t_ns``; rows are predicted when read (rows.sync)."""
        self._t_ns = t_ns

    def _screen(self, frame: SensorFrame) -> np.ndarray:
        """Positions, among the main rows, of the tracks that may gate a detection of
        ``frame`` (association.may_gate); their rows and shadows predicted to it."""
        rows = self._rows
        main = rows.main_rows()
        if main.size == 0:  # no track yet (a sparse sky's usual frame): nothing may gate
            return main
        sel = may_gate_at(
            rows.x, rows.P, rows.t_ns, main, frame.time_ns, frame.position, frame.los,
            frame.sigma, self._gates(main),
        )  # fmt: skip
        if sel.size:
            rows.sync(np.concatenate([main[sel], self._shadow_rows(main[sel])]), frame.time_ns)
        return sel

    def _shadow_rows(self, main_rows: np.ndarray) -> np.ndarray:
        """The shadow rows of the tracks of ``main_rows`` that have one."""
        out = self._rows.shadow_of()[main_rows]
        return out[out >= 0]

    def _sync_tracks(self, tracks: list[Track]) -> None:
        """Predict the rows (main and shadow) of ``tracks`` to the data time."""
        if not tracks:  # (most frames of a sparse sky)
            return
        rows = [t.row for t in tracks] + [t.shadow_row for t in tracks if t.shadow is not None]
        self._rows.sync(rows, self._t_ns)

    # ------------------------------------------------------------------ association
    def _associate_and_update(self, frame: SensorFrame, raw: SensorFrame) -> np.ndarray:
        """Gate, assign and update (``raw``: the frame before registration); returns the
        indices of the unclaimed detections."""
        n_det = frame.n_detections
        if n_det == 0:
            return np.zeros(0, int)
        bonus = self.config.thread_bonus
        threads = (
            self._threads.label(
                frame.sensor_id, frame.time_s, frame.position, frame.los, frame.sigma
            )
            if bonus > 0.0
            else None
        )
        sel = self._screen(frame)
        if sel.size == 0:
            return np.arange(n_det)
        rows = self._rows
        all_main = rows.main_rows()
        main_rows = all_main[sel]
        gates = self._gates(all_main)[sel]
        keys = self._keys(all_main)[sel]
        gating = gate(
            rows.x[main_rows], rows.P[main_rows], frame.position, frame.los, frame.sigma, gates
        )
        adjust = None
        if threads is not None:
            adjust = self._threads.adjustments(
                frame.sensor_id, keys[gating.track], threads[gating.det], bonus
            )
        matched = assign_pairs(gating.track, gating.det, gating.d2, gating.logdet, gates, adjust)
        if not matched.size:
            return np.arange(n_det)
        track_idx = gating.track[matched]
        assigned = _Assigned(gating, matched, main_rows[track_idx], track_idx, gating.det[matched])
        if threads is not None:
            self._threads.claim(
                frame.sensor_id,
                keys[track_idx],
                threads[assigned.det_idx],
                rows.x[assigned.rows, VEL],
                gating.u[track_idx],
                gating.rho[track_idx],
                np.sqrt(np.trace(rows.P[assigned.rows][:, VEL, VEL], axis1=1, axis2=2)),
            )
        claimed = np.zeros(n_det, bool)
        claimed[assigned.det_idx] = True
        if self._crowd is not None:  # young tracks in a crowd are not confirmed (.crowd)
            self._crowd.look(rows, gating, gates, main_rows, keys, track_idx, frame.time_ns)
        if self._surplus is not None:  # tentative tracks crowded out are deleted (.crowd)
            self._surplus.look(self._lifecycle, gating, gates, matched, claimed, main_rows)
        branch = branch_start(self, assigned, claimed, frame.time_ns) if self._aliases else []
        strain = before_update(self, assigned, main_rows, gates, frame)
        trks = [rows.owners[r].track for r in assigned.rows.tolist()]  # (rows stay till book)
        nis, shadowed = self._update_rows(frame, assigned, trks)
        if self.registration is not None:
            self._feed_registration(raw, assigned, gates, main_rows, trks)
        book_updates(self, frame, assigned, nis, trks)
        for k, trk in enumerate(shadowed):
            self._modes.observe_shadow(trk, float(nis[track_idx.size + k]))
        if self._aliases is not None:  # velocity hypotheses (.aliases, .regroup)
            after_update(self, frame, assigned, branch, claimed, nis[: track_idx.size], strain)
        return np.flatnonzero(~claimed)

    def _feed_registration(
        self,
        raw: SensorFrame,
        pairs: _Assigned,
        gates: np.ndarray,
        main_rows: np.ndarray,
        trks: list[Track],
    ) -> None:
        """Hand the updated tracks ``trks`` (of ``pairs``' rows) their detections and states
        to the registration, with which associations were unambiguous (.evidence;
        ``gates``, ``main_rows``: the gated tracks' chi-square gates and rows)."""
        x = self._rows.x[pairs.rows]
        kinds, keys, clear = registration_looks(
            self._rows.owners, pairs.gating, pairs.track_idx, pairs.det_idx, gates, main_rows,
            raw.n_detections, trks, x,
        )  # fmt: skip
        self.registration.observe(raw, keys, kinds, pairs.det_idx, x, clear)

    def _gates(self, main_rows: np.ndarray) -> np.ndarray:
        """Chi-square gate of each main row's track by its mode (cached with the rows'
        layout: it changes only when the rows or a mode do)."""
        gates = self._rows.layout_cache.get("gates")
        if gates is None:
            mode = self._rows.owner_columns()[1][main_rows]
            gates = np.where(mode == Mode.BALLISTIC, self._gate_ballistic, self._gate_boost)
            self._rows.layout_cache["gates"] = gates
        return gates

    def _keys(self, main_rows: np.ndarray) -> np.ndarray:
        """Track key of each main row (cached with the rows' layout)."""
        keys = self._rows.layout_cache.get("keys")
        if keys is None:
            keys = self._rows.owner_columns()[2][main_rows]
            self._rows.layout_cache["keys"] = keys
        return keys

    def _update_rows(
        self, frame: SensorFrame, pairs: _Assigned, trks: list[Track]
    ) -> tuple[np.ndarray, list[Track]]:
        """One batched EKF update of the assigned rows (tracks ``trks``) and their tracks'
        shadows (the same detections): the NIS (tracks, then shadows), the shadowed tracks."""
        rows = self._rows
        gating, pair_idx, upd_rows, track_idx, det_idx = pairs
        y = gating.residual[pair_idx]
        hpos = gating.hpos[track_idx]
        sh_rows = rows.shadow_of()[upd_rows]  # (a track has a shadow test iff a shadow row)
        sh_k = np.flatnonzero(sh_rows >= 0)
        shadowed = [trks[k] for k in sh_k.tolist()]
        sigma = frame.sigma[det_idx]
        reg = self.registration
        if reg is not None and self._looks_per_track:  # consider term by looks per sensor
            sigma = reg.pair_sigma(det_idx, _ballistic_looks(trks, frame, self._sensor_bits))
        if sh_k.size:
            sr = sh_rows[sh_k]
            sd = det_idx[sh_k]
            u, rho, e = predict_los(rows.x[sr, POS], frame.position)
            ys = residuals(u, e, frame.los[sd])[np.arange(sr.size), np.arange(sr.size)]
            all_rows = np.concatenate([upd_rows, sr])
            y = np.concatenate([y, ys])
            hpos = np.concatenate([hpos, position_jacobian(e, rho)])
            sigma = np.concatenate([sigma, sigma[sh_k]])  # a shadow: its track's sigma
        else:
            all_rows = upd_rows
        return update_rows(rows.x, rows.P, all_rows, y, hpos, sigma), shadowed

    def _look(self, frame: SensorFrame, touched: list[Track]) -> None:
        """Score every track in the frame's view by whether this look saw it (``touched``:
        updated or started by it); delete those it shows to be ghosts (.existence)."""
        rows = self._rows
        main = rows.main_rows()
        if main.size == 0:
            return
        idx = main[self._existence.in_view(frame.position, rows.x[main, POS])]
        if idx.size == 0:
            return
        low = self._existence.look_scores(rows.score, idx, [t.row for t in touched])
        for r in low:
            trk = rows.track_of(r)
            if not trk.deleted and not trk.earth_fixed:
                self._lifecycle.mark_deleted(trk)

    # ------------------------------------------------------------------ initiation
    def _initiate(self, frame: SensorFrame, unclaimed: np.ndarray) -> None:
        """Pair the unclaimed detections with waiting ones of other sensors (a track each)."""
        if unclaimed.size == 0:
            self._buffer.prune(frame.time_s)
            return
        t_s = frame.time_s
        if unclaimed.size == frame.n_detections and frame.los.flags.c_contiguous:
            los, sigma = frame.los, frame.sigma  # all of them, in order: no gathers (a
            # contiguous one: the buffer's BLAS product sees the same layout as a gather's)
        else:
            los, sigma = frame.los[unclaimed], frame.sigma[unclaimed]
        region = self.region  # S > 1: tracks start only in this shard's cells
        if region is not None:  # rays that come nowhere near them are not paired at all
            near = region.initiation_rays(frame.position, los, sigma, frame.time_ns, self.config)
            los, sigma = los[near], sigma[near]
        wanted = None if region is None else region.initiable(frame.time_ns)
        cands, left = self._buffer.pair(t_s, frame.sensor_id, frame.position, los, sigma, wanted)
        if left.size == los.shape[0]:  # none paired (the usual case): no gathers
            self._buffer.add(t_s, frame.sensor_id, frame.position, los, sigma)
        elif left.size:
            self._buffer.add(t_s, frame.sensor_id, frame.position, los[left], sigma[left])
        for _, cand in cands if region is None else region.own(cands, frame.time_ns):
            self._new_track(cand, frame.time_ns)

    def _new_track(self, cand: Candidate, t_ns: int) -> None:
        """A BOOST track at the two-ray intersection, at rest on the rotating Earth, with
        wide velocity and thrust priors."""
        cfg = self.config
        x = np.zeros(N_STATE)
        x[POS] = cand.position
        x[VEL] = cross_omega(cand.position)  # prior: at rest on the rotating Earth
        P = np.zeros((N_STATE, N_STATE))
        P[POS, POS] = cand.position_cov
        P[VEL, VEL] = cfg.init_velocity_sigma_mps**2 * np.eye(3)
        P[ACC, ACC] = cfg.init_accel_sigma_mps2**2 * np.eye(3)
        cloud_prior(x, P, self._tracks, self._rows, t_ns, cfg.init_cloud_radius_m)  # threat cloud
        trk = Track(key=self._next_key, created_ns=t_ns, last_update_ns=t_ns)
        self._next_key += 1
        trk.update_count = 2  # the two initiating looks
        for s in sorted(cand.sensors):
            trk.sensors_seen[s] = t_ns
            trk.report.since.add(s)
        # The launch point is estimated only when the launch itself was seen: a track
        # picked up higher in boost cannot be back-extrapolated without a thrust profile.
        first_h = ellipsoid_height(cand.position)
        trk.launch.enabled = bool(first_h < cfg.launch_max_first_altitude_m)
        self._tracks.append(trk)
        self._rows.append(x, P, trk, False, t_ns)
        self._rows.hits[trk.row, -1] = t_ns // NS_PER_S  # its first 1-s bin with looks
        self._rows.hits_n[trk.row] = 1
        if trk.launch.enabled:
            self._reports.sample_launch(trk, t_ns)

    # ------------------------------------------------------------------ shards (.region)
    @property
    def tracks(self) -> list[Track]:
        """The live tracks in creation order (read only)."""
        return self._tracks

    @property
    def rows(self) -> StateRows:
        """The stacked states of the tracks (read only)."""
        return self._rows

    def number_tracks(self, first: int, step: int) -> None:
        """Number the tracks ``first``, ``first + step``, ... at their first reports."""
        self._reports.number_tracks(first, step)

    def drop_ghost(self, trk: Track) -> None:
        """Delete a track another shard owns (its DELETED report is never sent)."""
        self._lifecycle.mark_deleted(trk)

    def remove_track(self, trk: Track) -> None:
        """Remove ``trk`` at once, between frames (a copy replaced by a hand-over)."""
        trk.deleted = True
        rows = [trk.row] + ([trk.shadow_row] if trk.shadow is not None else [])
        self._tracks.remove(trk)
        self._rows.remove(sorted(rows))
        self._threads.forget({trk.key})

    @property
    def sensor_names(self) -> tuple[str, ...]:
        """The sensors in the order of their bits in ``Track.ballistic_sensors``."""
        return tuple(self._sensor_bits)

    def adopt_track(
        self,
        trk: Track,
        x: np.ndarray,
        P: np.ndarray,
        t_ns: int,
        score: float,
        shadow: tuple[np.ndarray, np.ndarray, int] | None,
        sensors: tuple[str, ...] = (),
    ) -> Track:
        """Add a track handed over by another shard: its record ``trk`` (taken, given
        a new key), its state ``x`` (9,) / ``P`` (9, 9) (ECI, SI) at data time ``t_ns``,
        its existence score, its burnout shadow's (x, P, t_ns), if any, and the sender's
        :attr:`sensor_names` (its ballistic sensors are renumbered to ours)."""
        trk.ballistic_sensors = renumbered(trk.ballistic_sensors, sensors, self._sensor_bits)
        trk.key = self._next_key
        self._next_key += 1
        trk.updated_now = False
        trk.deleted = False
        self._tracks.append(trk)
        self._rows.append(np.array(x, float), np.array(P, float), trk, False, int(t_ns))
        self._rows.score[trk.row] = score
        if shadow is not None:
            sx, sP, st = shadow
            self._rows.append(np.array(sx, float), np.array(sP, float), trk, True, int(st))
        return trk

    # ------------------------------------------------------------------ life cycle
    def _run_lifecycle(self, t_ns: int) -> None:
        """Confirmation and manoeuvre checks every frame; coasting, deletion, air mode
        changes every life-cycle tick; merging every merge tick."""
        updated = self._updated
        if self._aliases is not None and self._aliases.active:  # hypotheses (.aliases)
            for trk in self._aliases.decide(t_ns):
                if not trk.deleted:
                    self._lifecycle.mark_deleted(trk)
            updated = [t for t in updated if not t.deleted and not self._aliases.is_open(t)]
        self._lifecycle.confirm_updated(updated, t_ns)
        self._modes.check_maneuvers(self._updated)
        if not self._lifecycle.tick_due(t_ns):
            return
        self._rows.sync(None, t_ns)  # the periodic checks read every row
        rows = np.array([t.row for t in self._tracks], dtype=int)
        if rows.size == 0:
            return
        pull_to_streams(self._rows, self._tracks, rows, self.config)  # (.stream)
        r, v = self._rows.x[rows, POS], self._rows.x[rows, VEL]
        height = ellipsoid_height(r)
        climb = radial_speed(r, v)
        pos_sigma = np.sqrt(np.trace(self._rows.P[rows][:, POS, POS], axis1=1, axis2=2))
        self._lifecycle.expire(self._tracks, t_ns, height, pos_sigma)
        self._modes.air_transitions(self._tracks, rows, height, climb)
        glide_transitions(
            self._modes.set_mode, self.config, self._tracks, self._rows.x, rows, height
        )
        if self._lifecycle.merge_due(t_ns):
            self._lifecycle.merge(self._tracks, t_ns)
