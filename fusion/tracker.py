"""The multi-target angle-only tracker: frames in, track reports out.

``Tracker.process(frame)`` takes frames in application order (time, sensor id,
sequence; DESIGN §6). Per frame, vectorised over all live tracks:

1. predict every track (and every burnout-test shadow) to the frame time in one batch;
2. gate every (track, detection) pair, assign by global nearest neighbour;
3. update the assigned tracks in one batched EKF call;
4. pair the unclaimed detections with recent ones of other sensors (initiation);
5. life cycle on data time: confirmation, coasting, deletion, merging, mode changes;
6. reports: at every status change and at most once per ``report_interval_s``.

Modes of a track's motion model (:mod:`.filters`): BOOST (thrust acceleration
estimated), BALLISTIC (point-mass + J2, ``a = 0``) and DRAG (ballistic below 100 km
with the deceleration estimated). Burnout is declared by a shadow test: a ballistic
copy of a boosting track, conditioned on zero thrust, is updated with the track's
detections; if its normalised innovations stay consistent for ``burnout_hold_s`` the
track adopts it. A ballistic track whose innovations grow (fading-memory NIS) reopens
its thrust estimate.

Deterministic for a given frame order: no wall clock, no unordered iteration, no
random numbers. Memory is bounded by the live tracks (per-track histories bounded,
deleted tracks dropped).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from scipy.stats import chi2

from . import frames
from .association import assign, gate, gate_threshold
from .config import FusionConfig
from .constants import ATMOSPHERE_TOP_M, OMEGA_EARTH
from .domain import (
    NS_PER_S,
    FlightPhase,
    GroundEllipse,
    SensorFrame,
    TrackReport,
    TrackStatus,
)
from .dynamics import (
    ACC,
    N_STATE,
    POS,
    SCALE_HEIGHT_M,
    VEL,
    air_density,
    cross_omega,
    ellipsoid_height,
)
from .filters import condition_on_zero_accel, open_accel, predict, update
from .impact import estimate_launch, predict_impacts
from .initiation import Candidate, InitiationBuffer
from .measurement import position_jacobian, predict_los, residuals

_OMEGA = np.array([0.0, 0.0, OMEGA_EARTH])
_LIFECYCLE_TICK_NS = 250_000_000  # life-cycle checks four times a second of data time
_MERGE_TICK_NS = NS_PER_S
_DELETE_BELOW_M = -2_000.0  # a track predicted this far underground has impacted
_REENTRY_ACCEL_SIGMA = 0.5  # m/s^2, drag prior when a ballistic track enters the air
_MIN_UPDATES_FOR_SHADOW = 3
_NIS_WINDOW = 16
_BOOST_SIGMA_HARD_FACTOR = 10.0  # an uncertain boost track is dropped at 10x the soft limit


class Mode(IntEnum):
    """Motion model of a track."""

    BOOST = 0
    BALLISTIC = 1
    DRAG = 2


@dataclass(slots=True)
class _Shadow:
    start_ns: int
    nis_sum: float = 0.0
    count: int = 0
    failed: bool = False


@dataclass(slots=True)
class _Track:
    key: int
    created_ns: int
    last_update_ns: int
    row: int = -1
    shadow_row: int = -1
    mode: Mode = Mode.BOOST
    status: TrackStatus = TrackStatus.TENTATIVE
    number: int | None = None
    revision: int = 0
    update_count: int = 0
    last_report_ns: int | None = None
    last_report: TrackReport | None = None
    status_changed: bool = False
    updated_now: bool = False
    deleted: bool = False
    hit_bins: deque = field(default_factory=lambda: deque(maxlen=16))
    sensors_seen: dict = field(default_factory=dict)  # sensor id -> last update time (ns)
    since_report: set = field(default_factory=set)
    nis_recent: deque = field(default_factory=lambda: deque(maxlen=_NIS_WINDOW))
    nis_fade: float = 0.0  # fading-memory NIS sum, ballistic manoeuvre test
    nis_fade_boost: float = 0.0  # shorter memory, thrust-change test in boost
    shadow: _Shadow | None = None
    burnout_ns: int | None = None
    first_boost: bool = False
    earth_fixed: bool = False
    uncertain: bool = False  # boost range lost (one satellite): coasting, not reported
    bright_seen: bool = False
    bright_run: int = 0
    dim_run: int = 0
    snapshots: deque = field(default_factory=lambda: deque(maxlen=32))
    launch_samples: deque = field(default_factory=lambda: deque(maxlen=64))
    launch: GroundEllipse | None = None
    launch_final: bool = False
    impact: GroundEllipse | None = None


class Tracker:
    """Multi-target tracker over angle-only frames (see the module docstring).

    ``fusion_id`` names the tracks ``<fusion_id>-<n>`` (n from 1, in order of first
    report, never reused).
    """

    def __init__(self, fusion_id: str = "fusion", config: FusionConfig | None = None) -> None:
        self.fusion_id = fusion_id
        self.config = cfg = config if config is not None else FusionConfig()
        self._t_ns: int | None = None
        self._x = np.zeros((0, N_STATE))
        self._P = np.zeros((0, N_STATE, N_STATE))
        self._owner: list[tuple[_Track, bool]] = []  # per row: (track, is_shadow)
        self._params: tuple | None = None  # cached per-row noise parameters
        self._tracks: list[_Track] = []  # live tracks in creation order
        self._next_key = 0
        self._next_number = 1
        self._buffer = InitiationBuffer(cfg)
        self._gate_ballistic = gate_threshold(cfg.gate_probability)
        self._gate_boost = gate_threshold(cfg.boost_gate_probability)
        self._shadow_fail = gate_threshold(cfg.boost_gate_probability)
        self._merge_d2 = cfg.merge_chi2
        # Covariance of the error a thrust change of sigma init_accel_sigma_mps2 made
        # boost_inflate_lag_s ago leaves in (r, v, a).
        lag, sa2 = cfg.boost_inflate_lag_s, cfg.init_accel_sigma_mps2**2
        blk = sa2 * np.array(
            [[lag**4 / 4, lag**3 / 2, lag**2 / 2], [lag**3 / 2, lag**2, lag], [lag**2 / 2, lag, 1]]
        )
        self._inflation = np.kron(blk, np.eye(3))
        self._last_lifecycle_tick: int | None = None
        self._last_merge_tick: int | None = None
        self._last_impact_tick: int | None = None
        self._nis_limit = {k: float(chi2.ppf(0.999, 2 * k) / k) for k in range(1, 65)}
        self._burnout_limit = {k: float(chi2.ppf(0.99, 2 * k)) for k in range(1, 512)}

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
        self._advance(t_ns)
        for trk in self._tracks:
            trk.updated_now = False
        unclaimed = self._associate_and_update(frame)
        self._initiate(frame, unclaimed)
        self._shadows(t_ns)
        self._lifecycle(t_ns)
        out = self._reports(t_ns)
        self._reap()
        return out

    def flush(self) -> list[TrackReport]:
        """End of data: report every reported live track whose latest state (updates since
        its last report) has not been reported yet. Tracks stay live."""
        if self._t_ns is None:
            return []
        due = [
            trk
            for trk in self._tracks
            if trk.number is not None
            and trk.last_report is not None
            and (trk.last_update_ns > trk.last_report.time_ns or trk.status_changed)
        ]
        return self._make_reports(due, self._t_ns)

    def live_reports(self) -> list[TrackReport]:
        """Latest report of each live track that has been reported, by track number."""
        live = [t for t in self._tracks if t.last_report is not None and not t.deleted]
        live.sort(key=lambda t: t.number)
        return [t.last_report for t in live]

    # ------------------------------------------------------------------ prediction
    def _row_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-row Singer rate, velocity and jerk noise PSDs (cached until rows or modes
        change; the drag rows' jerk noise follows the air density every frame)."""
        cfg = self.config
        if self._params is None:
            n = len(self._owner)
            inv_tau = np.zeros(n)
            qa = np.full(n, cfg.ballistic_accel_psd)
            qj = np.zeros(n)
            drag_rows = []
            for i, (trk, shadow) in enumerate(self._owner):
                if shadow or trk.mode == Mode.BALLISTIC:
                    continue
                inv_tau[i] = 1.0 / cfg.accel_time_constant_s
                if trk.mode == Mode.BOOST:
                    qj[i] = cfg.boost_jerk_psd
                else:
                    drag_rows.append(i)
            self._params = (inv_tau, qa, qj, np.array(drag_rows, dtype=int))
        inv_tau, qa, qj, rows = self._params
        if rows.size:
            qj = qj.copy()
            r, v, a = self._x[rows, POS], self._x[rows, VEL], self._x[rows, ACC]
            h = ellipsoid_height(r)
            v_rel = v - cross_omega(r)
            speed = np.linalg.norm(v_rel, axis=1)
            d_model = 0.5 * air_density(h) * speed**2 / cfg.impact_ballistic_coefficient
            d_est = np.maximum(np.linalg.norm(a, axis=1), d_model)
            vr = np.abs(np.einsum("ki,ki->k", r, v)) / np.linalg.norm(r, axis=1)
            jerk = d_est * vr / SCALE_HEIGHT_M  # drag grows as the air thickens
            qj[rows] = cfg.reentry_jerk_psd + 2.0 * jerk**2
        return inv_tau, qa, qj

    def _set_mode(self, trk: _Track, mode: Mode) -> None:
        trk.mode = mode
        self._params = None

    def _advance(self, t_ns: int) -> None:
        if self._t_ns is None:
            self._t_ns = t_ns
            return
        dt = (t_ns - self._t_ns) / NS_PER_S
        self._t_ns = t_ns
        if dt <= 0.0 or not self._owner:
            return
        inv_tau, qa, qj = self._row_params()
        self._x, self._P = predict(
            self._x, self._P, dt, inv_tau, qa, qj, max_step=self.config.max_step_s
        )

    # ------------------------------------------------------------------ association
    def _associate_and_update(self, frame: SensorFrame) -> np.ndarray:
        m = frame.n_detections
        if m == 0:
            return np.zeros(0, int)
        main_rows = np.array([i for i, (_, s) in enumerate(self._owner) if not s], dtype=int)
        if main_rows.size == 0:
            return np.arange(m)
        g = gate(self._x[main_rows], self._P[main_rows], frame.position, frame.los, frame.sigma)
        gates = np.array(
            [
                self._gate_ballistic
                if self._owner[r][0].mode == Mode.BALLISTIC
                else self._gate_boost
                for r in main_rows
            ]
        )
        pairs = assign(g.d2, g.logdet, gates)
        if not pairs:
            return np.arange(m)
        ti = np.array([p[0] for p in pairs])
        di = np.array([p[1] for p in pairs])
        rows = main_rows[ti]
        y = g.residual[ti, di]
        hpos = g.hpos[ti]
        sig = frame.sigma[di]
        # Shadows of the assigned tracks take the same detections.
        sh_rows, sh_det, sh_trk = [], [], []
        for k, r in enumerate(rows):
            trk = self._owner[r][0]
            if trk.shadow is not None:
                sh_rows.append(self._shadow_row(trk))
                sh_det.append(di[k])
                sh_trk.append(trk)
        if sh_rows:
            sr = np.array(sh_rows)
            sd = np.array(sh_det)
            u, rho, e = predict_los(self._x[sr, POS], frame.position)
            ys = residuals(u, e, frame.los[sd])[np.arange(sr.size), np.arange(sr.size)]
            rows_all = np.concatenate([rows, sr])
            y = np.concatenate([y, ys])
            hpos = np.concatenate([hpos, position_jacobian(e, rho)])
            sig = np.concatenate([sig, frame.sigma[sd]])
        else:
            rows_all = rows
        xn, Pn, nis = update(self._x[rows_all], self._P[rows_all], y, hpos, sig)
        self._x[rows_all] = xn
        self._P[rows_all] = Pn
        t_ns = frame.time_ns
        bin_ = t_ns // NS_PER_S
        cfg = self.config
        burnouts: list[_Track] = []
        reopen: list[_Track] = []
        for k, r in enumerate(rows):
            trk = self._owner[r][0]
            trk.update_count += 1
            trk.last_update_ns = t_ns
            trk.updated_now = True
            if not trk.hit_bins or trk.hit_bins[-1] != bin_:
                trk.hit_bins.append(bin_)
            trk.sensors_seen[frame.sensor_id] = t_ns
            trk.since_report.add(frame.sensor_id)
            trk.nis_recent.append(float(nis[k]))
            trk.nis_fade = cfg.maneuver_memory * trk.nis_fade + float(nis[k])
            trk.nis_fade_boost = cfg.boost_inflate_memory * trk.nis_fade_boost + float(nis[k])
            if trk.mode == Mode.BOOST and trk.nis_fade_boost > cfg.boost_inflate_nis:
                # Thrust changed faster than the jerk noise allows (staging, cutoff):
                # widen the thrust estimate, and position/velocity by what an unknown
                # thrust change that long ago would have done to them.
                self._P[r] += self._inflation
                trk.nis_fade_boost = 0.0
            d = int(di[k])
            bright = (
                frame.intensity[d] * (g.rho[ti[k]] / 1.0e6) ** 2 >= cfg.boost_intensity_threshold
            )
            if bright:
                trk.bright_seen = True
                trk.dim_run = 0
                trk.bright_run += 1
            else:
                trk.bright_run = 0
                if trk.bright_seen:
                    trk.dim_run += 1
            if trk.mode == Mode.BOOST:
                trk.snapshots.append(
                    (t_ns, self._x[r].copy(), self._P[r].copy(), frame.position,
                     frame.los[d], float(frame.sigma[d]), bright)
                )  # fmt: skip
                if trk.dim_run >= cfg.burnout_dim_count:
                    burnouts.append(trk)
            elif (
                trk.mode == Mode.BALLISTIC
                and trk.bright_run >= cfg.burnout_dim_count
                and trk.status != TrackStatus.TENTATIVE
            ):
                reopen.append(trk)
            if trk.status == TrackStatus.COASTING:
                if trk.uncertain:
                    # back from a single-satellite spell once range is held again
                    sig = float(np.sqrt(np.trace(self._P[r, POS, POS])))
                    trk.uncertain = sig > cfg.max_boost_position_sigma_m
                if not trk.uncertain:
                    trk.status = TrackStatus.CONFIRMED
                    trk.status_changed = True
            if trk.mode == Mode.BOOST and trk.first_boost:
                self._sample_launch(trk, r, t_ns)
        for trk in burnouts:
            self._burnout_from_plume(trk, t_ns)
        for trk in reopen:
            self._reopen_thrust(trk)
        for k, trk in enumerate(sh_trk):
            sh = trk.shadow
            if sh is None:
                continue
            v = float(nis[rows.size + k])
            sh.nis_sum += v
            sh.count += 1
            if v > self._shadow_fail:
                sh.failed = True
        claimed = np.zeros(m, bool)
        claimed[di] = True
        return np.flatnonzero(~claimed)

    @staticmethod
    def _shadow_row(trk: _Track) -> int:
        return trk.shadow_row

    @staticmethod
    def _main_row(trk: _Track) -> int:
        return trk.row

    def _reindex(self) -> None:
        for i, (o, s) in enumerate(self._owner):
            if s:
                o.shadow_row = i
            else:
                o.row = i

    # ------------------------------------------------------------------ initiation
    def _initiate(self, frame: SensorFrame, unclaimed: np.ndarray) -> None:
        if unclaimed.size == 0:
            self._buffer.prune(frame.time_s)
            return
        t_s = frame.time_s
        los = frame.los[unclaimed]
        sig = frame.sigma[unclaimed]
        cands, left = self._buffer.pair(t_s, frame.sensor_id, frame.position, los, sig)
        if left.size:
            self._buffer.add(t_s, frame.sensor_id, frame.position, los[left], sig[left])
        for _, cand in cands:
            self._new_track(cand, frame.time_ns)

    def _new_track(self, cand: Candidate, t_ns: int) -> None:
        cfg = self.config
        x = np.zeros(N_STATE)
        x[POS] = cand.position
        x[VEL] = cross_omega(cand.position)  # prior: at rest on the rotating Earth
        P = np.zeros((N_STATE, N_STATE))
        P[POS, POS] = cand.position_cov
        P[VEL, VEL] = cfg.init_velocity_sigma_mps**2 * np.eye(3)
        P[ACC, ACC] = cfg.init_accel_sigma_mps2**2 * np.eye(3)
        trk = _Track(key=self._next_key, created_ns=t_ns, last_update_ns=t_ns)
        self._next_key += 1
        trk.update_count = 2
        trk.hit_bins.append(t_ns // NS_PER_S)
        for s in sorted(cand.sensors):
            trk.sensors_seen[s] = t_ns
            trk.since_report.add(s)
        # The launch point is estimated only when the launch itself was seen: a track
        # picked up higher in boost cannot be back-extrapolated without a thrust profile.
        trk.first_boost = bool(ellipsoid_height(cand.position) < cfg.launch_max_first_altitude_m)
        self._tracks.append(trk)
        self._append_row(x, P, trk, False)
        if trk.first_boost:
            self._sample_launch(trk, len(self._owner) - 1, t_ns)

    def _append_row(self, x: np.ndarray, P: np.ndarray, trk: _Track, shadow: bool) -> None:
        self._x = np.concatenate([self._x, x[None]])
        self._P = np.concatenate([self._P, P[None]])
        self._owner.append((trk, shadow))
        self._params = None
        if shadow:
            trk.shadow_row = len(self._owner) - 1
        else:
            trk.row = len(self._owner) - 1

    def _remove_rows(self, rows: list[int]) -> None:
        if not rows:
            return
        keep = np.ones(len(self._owner), bool)
        keep[rows] = False
        self._x = self._x[keep]
        self._P = self._P[keep]
        self._owner = [o for o, k in zip(self._owner, keep, strict=True) if k]
        self._params = None
        self._reindex()

    # ------------------------------------------------------------------ burnout
    def _burnout_from_plume(self, trk: _Track, t_ns: int) -> None:
        """The plume went dark: thrust stopped between the last bright detection (time
        t_b) and the first dark one (t_d). Restart from the track's state after t_b,
        thrusting on to the middle of that interval (velocity widened by the unknown
        cut-off instant), drop the thrust, and re-apply the dark detections with the
        ballistic model."""
        snaps = list(trk.snapshots)
        j = max((i for i, s in enumerate(snaps) if s[6]), default=None)
        if j is None or j == len(snaps) - 1:
            return
        cfg = self.config
        t_b, x_b, P_b = snaps[j][0], snaps[j][1], snaps[j][2]
        t_d = snaps[j + 1][0]
        half = (t_d - t_b) / NS_PER_S / 2.0
        x, P = predict(
            x_b[None], P_b[None], half, 1.0 / cfg.accel_time_constant_s,
            cfg.ballistic_accel_psd, cfg.boost_jerk_psd, cfg.max_step_s,
        )  # fmt: skip
        a = x[0, ACC].copy()
        P[0, VEL, VEL] += np.outer(a, a) * (2.0 * half) ** 2 / 12.0
        x[0, ACC] = 0.0
        P[0, ACC, :] = 0.0
        P[0, :, ACC] = 0.0
        t_cur = t_b + int(half * NS_PER_S)
        for t_k, _, _, s_pos, los, sig, _ in snaps[j + 1 :]:
            x, P = predict(x, P, (t_k - t_cur) / NS_PER_S, 0.0, cfg.ballistic_accel_psd, 0.0,
                           cfg.max_step_s)  # fmt: skip
            t_cur = t_k
            u, rho, e = predict_los(x[:, POS], s_pos)
            y = residuals(u, e, los[None])[:, 0, :]
            x, P, _ = update(x, P, y, position_jacobian(e, rho), np.array([sig]))
        x, P = predict(x, P, (t_ns - t_cur) / NS_PER_S, 0.0, cfg.ballistic_accel_psd, 0.0,
                       cfg.max_step_s)  # fmt: skip
        r = trk.row
        self._x[r] = x[0]
        self._P[r] = P[0]
        self._to_ballistic(trk, t_b + int(half * NS_PER_S))

    def _to_ballistic(self, trk: _Track, burnout_ns: int) -> None:
        self._set_mode(trk, Mode.BALLISTIC)
        trk.burnout_ns = burnout_ns
        trk.nis_fade = 0.0
        trk.snapshots.clear()
        trk.bright_run = 0
        if trk.shadow is not None:
            self._remove_rows([trk.shadow_row])
            trk.shadow = None

    def _shadows(self, t_ns: int) -> None:
        cfg = self.config
        hold_ns = int(cfg.burnout_hold_s * NS_PER_S)
        drop: list[int] = []
        spawn: list[_Track] = []
        for trk in self._tracks:
            sh = trk.shadow
            if trk.mode != Mode.BOOST:
                continue
            if sh is None:
                if trk.update_count >= _MIN_UPDATES_FOR_SHADOW and not trk.bright_seen:
                    spawn.append(trk)
                continue
            if trk.bright_seen:  # the plume tells burnout better than the shadow
                drop.append(trk.shadow_row)
                trk.shadow = None
                continue
            if sh.failed:
                drop.append(self._shadow_row(trk))
                trk.shadow = None
                spawn.append(trk)
                continue
            if t_ns - sh.start_ns < hold_ns or sh.count < 2 * cfg.burnout_hold_s:
                continue
            limit = self._burnout_limit.get(sh.count, float(chi2.ppf(0.99, 2 * sh.count)))
            srow = self._shadow_row(trk)
            if sh.nis_sum <= limit:
                # Burnout: thrust has been zero over the whole test window, so the
                # track's own (honest) estimate is conditioned on zero thrust now.
                mrow = self._main_row(trk)
                xs, Ps = condition_on_zero_accel(self._x[mrow : mrow + 1], self._P[mrow : mrow + 1])
                self._x[mrow] = xs[0]
                self._P[mrow] = Ps[0]
                trk.shadow = None
                drop.append(srow)
                self._to_ballistic(trk, sh.start_ns)
            else:
                drop.append(srow)
                trk.shadow = None
                spawn.append(trk)
        self._remove_rows(sorted(drop))
        for trk in spawn:
            r = self._main_row(trk)
            xs, Ps = condition_on_zero_accel(self._x[r : r + 1], self._P[r : r + 1])
            trk.shadow = _Shadow(start_ns=t_ns)
            self._append_row(xs[0], Ps[0], trk, True)

    # ------------------------------------------------------------------ life cycle
    def _lifecycle(self, t_ns: int) -> None:
        cfg = self.config
        tick = t_ns // _LIFECYCLE_TICK_NS
        full = tick != self._last_lifecycle_tick
        self._last_lifecycle_tick = tick
        for trk in self._tracks:
            if trk.updated_now and trk.status == TrackStatus.TENTATIVE:
                self._try_confirm(trk, t_ns)
            if trk.updated_now and trk.mode == Mode.BALLISTIC and trk.nis_fade > cfg.maneuver_nis:
                self._reopen_thrust(trk)
                trk.bright_seen = False  # no plume seen: the shadow test decides burnout
        if not full:
            return
        rows = np.array([self._main_row(t) for t in self._tracks], dtype=int)
        if rows.size == 0:
            return
        r, v = self._x[rows, POS], self._x[rows, VEL]
        h = ellipsoid_height(r)
        vr = np.einsum("ki,ki->k", r, v) / np.linalg.norm(r, axis=1)
        pos_sigma = np.sqrt(np.trace(self._P[rows][:, POS, POS], axis1=1, axis2=2))
        for k, trk in enumerate(self._tracks):
            quiet_s = (t_ns - trk.last_update_ns) / NS_PER_S
            delete = False
            if trk.status == TrackStatus.TENTATIVE:
                age_s = (t_ns - trk.created_ns) / NS_PER_S
                delete = quiet_s > cfg.tentative_timeout_s or (
                    age_s > cfg.tentative_max_age_s and not trk.earth_fixed
                )
            else:
                if trk.mode == Mode.BOOST:
                    # A boost seen by one satellite loses range: the track coasts, silent,
                    # until a second satellite pins it again (same id), or is dropped.
                    limit = cfg.max_boost_position_sigma_m * _BOOST_SIGMA_HARD_FACTOR
                    if pos_sigma[k] > cfg.max_boost_position_sigma_m and not trk.uncertain:
                        trk.uncertain = True
                        if trk.status == TrackStatus.CONFIRMED:
                            trk.status = TrackStatus.COASTING
                            trk.status_changed = True
                else:
                    limit = cfg.max_position_sigma_m
                delete = quiet_s > cfg.delete_after_s or pos_sigma[k] > limit
                if not delete and trk.status == TrackStatus.CONFIRMED:
                    if quiet_s > cfg.coast_after_s:
                        trk.status = TrackStatus.COASTING
                        trk.status_changed = True
            if trk.status != TrackStatus.TENTATIVE and h[k] < _DELETE_BELOW_M:
                delete = True  # impacted
            elif h[k] < -50_000.0:
                delete = True  # a tentative ghost deep underground
            if delete:
                self._mark_deleted(trk)
                continue
            if trk.mode == Mode.BALLISTIC and h[k] < ATMOSPHERE_TOP_M and vr[k] < 0.0:
                i = rows[k]
                self._x[i : i + 1], self._P[i : i + 1] = open_accel(
                    self._x[i : i + 1], self._P[i : i + 1], _REENTRY_ACCEL_SIGMA
                )
                self._set_mode(trk, Mode.DRAG)
            elif trk.mode == Mode.DRAG and h[k] > ATMOSPHERE_TOP_M and vr[k] > 0.0:
                i = rows[k]
                self._x[i : i + 1], self._P[i : i + 1] = condition_on_zero_accel(
                    self._x[i : i + 1], self._P[i : i + 1]
                )
                self._set_mode(trk, Mode.BALLISTIC)
        merge_tick = t_ns // _MERGE_TICK_NS
        if merge_tick != self._last_merge_tick:
            self._last_merge_tick = merge_tick
            self._merge()

    def _reap(self) -> None:
        """Drop deleted tracks (after their DELETED reports) and their rows."""
        if not any(t.deleted for t in self._tracks):
            return
        rows: list[int] = []
        for trk in self._tracks:
            if trk.deleted:
                if trk.shadow is not None:
                    rows.append(trk.shadow_row)
                rows.append(trk.row)
        self._remove_rows(sorted(rows))
        self._tracks = [t for t in self._tracks if not t.deleted]

    def _mark_deleted(self, trk: _Track) -> None:
        trk.deleted = True
        trk.status = TrackStatus.DELETED
        trk.status_changed = True

    def _try_confirm(self, trk: _Track, t_ns: int) -> None:
        cfg = self.config
        b = t_ns // NS_PER_S
        if trk.earth_fixed:
            return
        hits = sum(1 for x in trk.hit_bins if x > b - cfg.confirm_n)
        if hits < cfg.confirm_m or trk.update_count < cfg.confirm_min_updates:
            return
        r = self._main_row(trk)
        pos, vel = self._x[r, POS], self._x[r, VEL]
        h = float(ellipsoid_height(pos))
        # Two satellites suffice for a burning plume (a launch is often seen by two only);
        # a dim source (two-ray ghosts of fires, glint, clutter) needs a third satellite.
        plume = trk.bright_run >= 2
        launch = plume and h <= cfg.confirm_two_sensor_max_altitude_m
        need = 2 if plume else cfg.confirm_min_sensors
        recent = t_ns - cfg.confirm_n * NS_PER_S
        if sum(1 for v in trk.sensors_seen.values() if v > recent) < need:
            return
        n = len(trk.nis_recent)
        if n == 0 or sum(trk.nis_recent) / n > self._nis_limit[min(n, 64)]:
            return
        if h < cfg.confirm_min_altitude_m:
            # Not Earth-fixed: the Earth-relative velocity must be clearly non-zero.
            v_rel = vel - cross_omega(pos)
            speed = float(np.linalg.norm(v_rel))
            m2 = float(v_rel @ np.linalg.solve(self._P[r, VEL, VEL], v_rel))
            # A bright plume low down (a launch) needs less evidence of motion than a
            # dim source, which may be a fire or glint.
            need_m2 = cfg.confirm_velocity_chi2_plume if launch else cfg.confirm_velocity_chi2
            if speed < cfg.confirm_min_earth_speed_mps or m2 < need_m2:
                if (t_ns - trk.created_ns) / NS_PER_S > cfg.earth_fixed_after_s:
                    trk.earth_fixed = True  # still not moving: Earth-fixed for good
                return
        trk.status = TrackStatus.CONFIRMED
        trk.status_changed = True

    def _reopen_thrust(self, trk: _Track) -> None:
        r = self._main_row(trk)
        self._x[r : r + 1], self._P[r : r + 1] = open_accel(
            self._x[r : r + 1], self._P[r : r + 1], self.config.init_accel_sigma_mps2
        )
        self._set_mode(trk, Mode.BOOST)
        trk.nis_fade = 0.0
        trk.dim_run = 0

    def _merge(self) -> None:
        live = [t for t in self._tracks if not t.deleted]
        if len(live) < 2:
            return
        rows = np.array([self._main_row(t) for t in live])
        x6 = self._x[rows, :6]
        P6 = self._P[rows][:, :6, :6]
        d = x6[:, None, :3] - x6[None, :, :3]
        near = np.linalg.norm(d, axis=-1) < 20_000.0
        np.fill_diagonal(near, False)
        ii, jj = np.nonzero(np.triu(near))
        for i, j in zip(ii, jj, strict=True):
            a, b = live[i], live[j]
            if a.deleted or b.deleted:
                continue
            e = x6[i] - x6[j]
            S = P6[i] + P6[j]
            try:
                d2 = float(e @ np.linalg.solve(S, e))
            except np.linalg.LinAlgError:
                continue
            if d2 > self._merge_d2:
                continue
            self._mark_deleted(min((a, b), key=self._merge_rank))

    @staticmethod
    def _merge_rank(trk: _Track) -> tuple:
        # The track to drop ranks lowest: tentative before confirmed, fewer updates,
        # then the younger one.
        return (trk.status != TrackStatus.TENTATIVE, trk.update_count, -trk.key)

    def _sample_launch(self, trk: _Track, row: int, t_ns: int) -> None:
        cfg = self.config
        if trk.launch_final:
            return
        if (t_ns - trk.created_ns) / NS_PER_S > cfg.launch_fit_s:
            return
        s = trk.launch_samples
        if s and (t_ns - s[-1][0]) < NS_PER_S // 4:
            return
        t_s = t_ns / NS_PER_S
        r_ecef = frames.teme_to_ecef(self._x[row, POS], t_s)
        var = float(np.trace(self._P[row, POS, POS]) / 3.0)
        s.append((t_ns, r_ecef, var))

    # ------------------------------------------------------------------ reports
    def _phase(self, trk: _Track, row: int) -> FlightPhase:
        if trk.mode == Mode.BOOST:
            return FlightPhase.BOOST
        if trk.mode == Mode.DRAG:
            r, v = self._x[row, POS], self._x[row, VEL]
            return FlightPhase.REENTRY if float(r @ v) < 0.0 else FlightPhase.MIDCOURSE
        return FlightPhase.MIDCOURSE

    def _refresh_impacts(self, t_ns: int) -> None:
        tick = t_ns // int(self.config.impact_refresh_s * NS_PER_S)
        if tick == self._last_impact_tick:
            return
        self._last_impact_tick = tick
        due = [
            t
            for t in self._tracks
            if t.mode != Mode.BOOST
            and t.status in (TrackStatus.CONFIRMED, TrackStatus.COASTING)
            and not t.deleted
        ]
        for t in self._tracks:
            if t.mode == Mode.BOOST:
                t.impact = None
        if not due:
            return
        rows = np.array([self._main_row(t) for t in due])
        res = predict_impacts(
            self._x[rows, :6], self._P[rows][:, :6, :6], t_ns / NS_PER_S, self.config
        )
        for trk, imp in zip(due, res, strict=True):
            trk.impact = imp

    def _update_launch(self, trk: _Track) -> None:
        if not trk.first_boost or trk.launch_final or len(trk.launch_samples) < 8:
            return
        s = trk.launch_samples
        t = np.array([x[0] for x in s], dtype=np.int64)
        span = (t[-1] - t[0]) / NS_PER_S
        r = np.array([x[1] for x in s])
        var = np.array([x[2] for x in s])
        est = estimate_launch((t - t[0]) / NS_PER_S + t[0] / NS_PER_S, r, var)
        if est is not None:
            trk.launch = est
        if span >= self.config.launch_fit_s - 1.0 or trk.mode != Mode.BOOST:
            trk.launch_final = True
            trk.launch_samples.clear()

    def _reports(self, t_ns: int) -> list[TrackReport]:
        cfg = self.config
        self._refresh_impacts(t_ns)
        interval = int(cfg.report_interval_s * NS_PER_S)
        out: list[TrackReport] = []
        for trk in self._tracks:
            # Tentative tracks stay internal: a track is first reported when confirmed.
            visible = trk.number is not None or trk.status == TrackStatus.CONFIRMED
            if not visible:
                continue
            due = trk.status_changed or trk.number is None
            if not due and trk.updated_now and not trk.uncertain:
                due = trk.last_report_ns is None or t_ns - trk.last_report_ns >= interval
            if due:
                out.append(trk)
        return self._make_reports(out, t_ns)

    def _make_reports(self, trks: list[_Track], t_ns: int) -> list[TrackReport]:
        """Reports of ``trks`` at data time ``t_ns`` (geodetic conversion in one batch)."""
        if not trks:
            return []
        rows = np.array([t.row for t in trks])
        lat, lon, alt = frames.teme_to_geodetic(self._x[rows, POS], t_ns / NS_PER_S)
        return [
            self._make_report(trk, t_ns, float(la), float(lo), float(al))
            for trk, la, lo, al in zip(trks, lat, lon, alt, strict=True)
        ]

    def _make_report(
        self, trk: _Track, t_ns: int, lat: float, lon: float, alt: float
    ) -> TrackReport:
        if trk.number is None:
            trk.number = self._next_number
            self._next_number += 1
        row = trk.row
        x6 = self._x[row, :6].copy()
        cov = self._P[row, :6, :6].copy()
        phase = self._phase(trk, row)
        if not trk.deleted and (trk.mode == Mode.BOOST or trk.launch is None):
            self._update_launch(trk)
        trk.revision += 1
        rep = TrackReport(
            track_id=f"{self.fusion_id}-{trk.number}",
            revision=trk.revision,
            status=trk.status,
            time_ns=t_ns,
            position=x6[:3],
            velocity=x6[3:6],
            covariance=cov,
            latitude_deg=lat,
            longitude_deg=lon,
            altitude_m=alt,
            phase=phase,
            impact=trk.impact if trk.mode != Mode.BOOST else None,
            launch=trk.launch,
            sensor_ids=tuple(sorted(trk.since_report)),
            update_count=trk.update_count,
        )
        trk.since_report.clear()
        trk.status_changed = False
        trk.last_report_ns = t_ns
        trk.last_report = rep
        return rep
