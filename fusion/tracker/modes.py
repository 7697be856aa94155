"""Motion modes of the tracks: boost, ballistic, drag, and the switches between them.

A track starts in BOOST (thrust acceleration estimated under white jerk noise). Burnout
is declared two ways:

- by the plume: bright detections (intensity normalised to 1000 km range at or above
  ``boost_intensity_threshold``) followed by ``burnout_dim_count`` dark ones. The track
  is replayed from its last bright update (:meth:`MotionModes.burnout_from_plume`);
- by a shadow test when no plume was seen: a ballistic copy of the boosting track,
  conditioned on zero thrust, takes the track's detections; if its normalised
  innovations stay consistent for ``burnout_hold_s`` the track adopts it
  (:meth:`MotionModes.run_shadow_tests`).

A BALLISTIC track whose innovations grow (fading-memory NIS above ``maneuver_nis``) or
that shows a plume again reopens its thrust (back to BOOST). A BALLISTIC track
descending below ``ATMOSPHERE_TOP_M`` (100 km) estimates its drag deceleration (DRAG);
a DRAG track climbing out goes back to BALLISTIC. Per-row process noise (Singer rate,
acceleration and jerk PSDs) follows the mode: :meth:`MotionModes.noise`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from ..association import chi2_quantile, gate_threshold
from ..config import FusionConfig
from ..constants import ATMOSPHERE_TOP_M
from ..domain import NS_PER_S, TrackStatus
from ..dynamics import ACC, POS, SCALE_HEIGHT_M, VEL, air_density, cross_omega, ellipsoid_height
from ..filters import condition_on_zero_accel, open_accel, predict, update
from ..measurement import position_jacobian, predict_los, residuals
from .rows import StateRows
from .track import Look, Mode, ShadowTest, Track, replay_start

INTENSITY_REFERENCE_RANGE_M = 1.0e6  # m; intensities compare at 1000 km (times range^2)
_REENTRY_ACCEL_SIGMA = 0.5  # m/s^2, drag prior when a ballistic track enters the air
_MIN_UPDATES_FOR_SHADOW = 3  # updates of a boost track before its burnout test starts
_SHADOW_UPDATES_PER_S = 2  # a shadow needs this many updates per s of burnout_hold_s
_FEW = 4  # updates in a frame up to which the NIS fades are written row by row
_BURNOUT_PROBABILITY = 0.99  # chi-square quantile the shadow's NIS sum must stay within


@lru_cache(maxsize=1024)
def _burnout_nis_limit(count: int) -> float:
    """Largest NIS sum of ``count`` 2-D updates consistent with zero thrust."""
    return chi2_quantile(_BURNOUT_PROBABILITY, 2 * count)


def boost_inflation(config: FusionConfig) -> np.ndarray:
    """Covariance (9, 9) of the error in (r, v, a) left by a thrust change of sigma
    ``init_accel_sigma_mps2`` made ``boost_inflate_lag_s`` ago: the discrete white-noise
    model over that lag (Bar-Shalom's piecewise-constant jerk; filterpy's
    ``Q_discrete_white_noise(3, dt, var, block_size=3, order_by_dim=False)``, the same
    floats), per axis, in the (r, v, a) order of the state."""
    dt = config.boost_inflate_lag_s
    var = config.init_accel_sigma_mps2**2
    q = np.array(
        [
            [0.25 * dt**4, 0.5 * dt**3, 0.5 * dt**2],
            [0.5 * dt**3, dt**2, dt],
            [0.5 * dt**2, dt, 1],
        ]
    )
    return np.kron(q, np.eye(3)) * var


def radial_speed(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Radial velocity component (m/s, > 0 climbing) of rows of positions and velocities."""
    return np.einsum("ki,ki->k", r, v) / np.linalg.norm(r, axis=1)


class MotionModes:
    """Mode changes of the tracks in ``rows`` and the process noise of each mode."""

    def __init__(self, config: FusionConfig, rows: StateRows) -> None:
        self.config = config
        self.rows = rows
        self._inflation = boost_inflation(config)
        self._shadow_fail = gate_threshold(config.boost_gate_probability)
        self._hold_ns = int(config.burnout_hold_s * NS_PER_S)
        # what may change a shadow test without an update of its track: the switch to
        # BOOST (by key) and the end of a test's hold time (heap of (end ns, push count,
        # track): the count keeps the tracks themselves out of the comparison)
        self._to_boost: dict[int, Track] = {}
        self._hold_ends: list[tuple[int, int, Track]] = []
        self._pushes = 0

    # ------------------------------------------------------------------ process noise
    def noise(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-row Singer rate (1/s), velocity noise PSD and jerk noise PSD (cached until
        rows or modes change; the drag rows' jerk noise follows the air density)."""
        cfg = self.config
        rows = self.rows
        if rows.noise_cache is None:
            shadow, mode, _ = rows.owner_columns()
            active = ~shadow & (mode != Mode.BALLISTIC)  # a shadow is ballistic
            boost = active & (mode == Mode.BOOST)
            glide = active & (mode == Mode.GLIDE)
            inv_tau = np.where(active, 1.0 / cfg.accel_time_constant_s, 0.0)
            accel_psd = np.full(len(rows), cfg.ballistic_accel_psd)
            jerk_psd = np.where(boost, cfg.boost_jerk_psd, np.where(glide, cfg.glide_jerk_psd, 0.0))
            drag_rows = np.flatnonzero(active & ~boost & ~glide)
            rows.noise_cache = (inv_tau, accel_psd, jerk_psd, drag_rows)
        inv_tau, accel_psd, jerk_psd, drag_idx = rows.noise_cache
        if drag_idx.size:
            jerk_psd = jerk_psd.copy()
            jerk_psd[drag_idx] = self._drag_jerk_psd(drag_idx)
        return inv_tau, accel_psd, jerk_psd

    def _drag_jerk_psd(self, idx: np.ndarray) -> np.ndarray:
        """Jerk noise of drag rows: drag grows as the air thickens on the way down."""
        cfg = self.config
        r, v, a = self.rows.x[idx, POS], self.rows.x[idx, VEL], self.rows.x[idx, ACC]
        h = ellipsoid_height(r)
        v_rel = v - cross_omega(r)
        speed = np.linalg.norm(v_rel, axis=1)
        d_model = 0.5 * air_density(h) * speed**2 / cfg.impact_ballistic_coefficient
        d_est = np.maximum(np.linalg.norm(a, axis=1), d_model)
        descent = np.abs(radial_speed(r, v))
        jerk = d_est * descent / SCALE_HEIGHT_M
        return cfg.reentry_jerk_psd + 2.0 * jerk**2

    def set_mode(self, trk: Track, mode: Mode) -> None:
        """Change ``trk``'s mode (the caller has adjusted its row's acceleration)."""
        trk.mode = mode
        self.rows.mode_changed(trk)
        if mode == Mode.BOOST:
            self._to_boost[trk.key] = trk

    # ------------------------------------------------------------------ after an update
    def observe_updates(
        self,
        trks: list[Track],
        nis: list[float],
        bright: list[bool],
        t_ns: int,
        dark_look: Callable[[int], Look],
        at: np.ndarray | None = None,
        nis_a: np.ndarray | None = None,
    ) -> list[tuple[Track, Mode]]:
        """Mode bookkeeping of the tracks ``trks`` one frame (data time ``t_ns``) updated
        (their NIS ``nis``, whether their looks were bright ``bright``; ``dark_look(k)``:
        the k-th track's :class:`Look`, made only for a boosting track's dark look; ``at``
        and ``nis_a``: their rows and NIS as arrays, when the caller has them): NIS fades
        and thrust-change inflation (columns, :meth:`_fade`), plume runs and the boost looks
        kept for the burnout replay (:class:`.track.Plume`; the bright ones' states gathered
        once, :meth:`keep_bright`). Returns the tracks due to change mode (BALLISTIC: the
        plume went dark; BOOST: a ballistic track shows a plume again) with that mode, in
        ``trks`` order."""
        if at is None:
            at = np.array([t.row for t in trks], dtype=np.int64)
        self._fade(at, np.asarray(nis, dtype=float) if nis_a is None else nis_a)
        dim_count = self.config.burnout_dim_count
        changes: list[tuple[Track, Mode]] = []
        kept: list[int] = []  # (positions in trks) boosting through a bright look: state kept
        for k, trk in enumerate(trks):
            bright_k, mode = bright[k], trk.mode
            plume = trk.plume
            if bright_k:
                plume.bright_seen = True
                plume.dim_run = 0
                plume.bright_run += 1
            else:
                plume.bright_run = 0
                if plume.bright_seen:
                    plume.dim_run += 1
            if mode == Mode.BOOST:  # the replay starts from the newest bright look
                snaps = plume.snapshots
                if bright_k:
                    if snaps:
                        snaps.clear()  # the looks before it are never replayed
                    snaps.append(t_ns)
                    kept.append(k)
                else:
                    snaps.append(dark_look(k))
                if plume.dim_run >= dim_count:
                    changes.append((trk, Mode.BALLISTIC))
            elif (
                mode == Mode.BALLISTIC
                and plume.bright_run >= dim_count
                and trk.status != TrackStatus.TENTATIVE
            ):
                changes.append((trk, Mode.BOOST))
        if kept:
            self.keep_bright([trks[k] for k in kept], at[kept])
        return changes

    def _fade(self, at: np.ndarray, nis: np.ndarray) -> None:
        """The NIS ``nis`` (K,) of the updates of the distinct main rows ``at`` (K,) into
        their fading sums (``StateRows.fade``: the same floats as one by one); a boost
        or glide row whose short sum passes ``boost_inflate_nis`` is inflated."""
        cfg, rows = self.config, self.rows
        if at.size <= _FEW:  # a sparse frame: row by row, Python floats (the same values)
            self._fade_rows(at.tolist(), nis.tolist())
            return
        fade = rows.fade[at]
        rows.fade[at, 0] = cfg.maneuver_memory * fade[:, 0] + nis
        boost = cfg.boost_inflate_memory * fade[:, 1] + nis
        mode = rows.owner_columns()[1][at]
        jump = (boost > cfg.boost_inflate_nis) & ((mode == Mode.BOOST) | (mode == Mode.GLIDE))
        if jump.any():
            # Thrust (lift) changed faster than the jerk noise allows (staging, cutoff,
            # a glider's turn): widen the thrust estimate, and position/velocity by
            # what an unknown thrust change that long ago would have done to them.
            rows.P[at[jump]] += self._inflation
            boost[jump] = 0.0
        rows.fade[at, 1] = boost

    def _fade_rows(self, at: list[int], nis: list[float]) -> None:
        """:meth:`_fade` of a few rows, one by one."""
        cfg, rows = self.config, self.rows
        m_fade, m_boost = cfg.maneuver_memory, cfg.boost_inflate_memory
        limit = cfg.boost_inflate_nis
        fade, mode = rows.fade, rows.owner_columns()[1]
        for r, v in zip(at, nis, strict=True):
            f0, f1 = fade[r].tolist()
            fade[r, 0] = m_fade * f0 + v
            boost = m_boost * f1 + v
            if boost > limit and int(mode[r]) in (Mode.BOOST, Mode.GLIDE):
                rows.P[r] += self._inflation
                boost = 0.0
            fade[r, 1] = boost

    def keep_bright(self, trks: list[Track], at: np.ndarray | None = None) -> None:
        """Keep the state of each of ``trks`` (tracks :meth:`observe_updates` saw boosting
        through a bright look in this frame) as it is now (after its update and any
        inflation, before any burnout moves rows): one gather of their rows per frame,
        each track's ``Plume.bright`` a row of it (the same floats as a copy of its row;
        a batch is freed once no track's newest bright state is in it; ``at``: their rows,
        when the caller has them)."""
        if not trks:
            return
        if at is None:
            at = np.array([t.row for t in trks])
        xs, Ps = self.rows.x[at], self.rows.P[at]
        for i, trk in enumerate(trks):
            trk.plume.bright = (xs, Ps, i)

    def is_bright(self, intensity: float, range_m: float) -> bool:
        """A detection of ``intensity`` at ``range_m`` is a burning plume."""
        scaled = intensity * (range_m / INTENSITY_REFERENCE_RANGE_M) ** 2
        return bool(scaled >= self.config.boost_intensity_threshold)

    def observe_shadow(self, trk: Track, nis: float) -> None:
        """Add one update's NIS of ``trk``'s shadow to its burnout test."""
        sh = trk.shadow
        if sh is None:
            return
        sh.nis_sum += nis
        sh.count += 1
        if nis > self._shadow_fail:
            sh.failed = True

    # ------------------------------------------------------------------ burnout
    def burnout_from_plume(self, trk: Track, t_ns: int) -> None:
        """The plume went dark: thrust stopped between the last bright detection (time
        t_b) and the first dark one (t_d). Restart from the track's state after t_b,
        thrusting on to the middle of that interval (velocity widened by the unknown
        cut-off instant), drop the thrust, and re-apply the dark detections with the
        ballistic model."""
        start = replay_start(trk.plume)
        if start is None:
            return
        t_b, x_b, P_b, dark = start
        cfg = self.config
        half = (dark[0].time_ns - t_b) / NS_PER_S / 2.0
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
        for look in dark:
            x, P = self._predict_ballistic(x, P, look.time_ns - t_cur)
            t_cur = look.time_ns
            u, rho, e = predict_los(x[:, POS], look.sensor_position)
            y = residuals(u, e, look.los[None])[:, 0, :]
            x, P, _ = update(x, P, y, position_jacobian(e, rho), np.array([look.sigma]))
        x, P = self._predict_ballistic(x, P, t_ns - t_cur)
        self.rows.x[trk.row] = x[0]
        self.rows.P[trk.row] = P[0]
        self.to_ballistic(trk, t_b + int(half * NS_PER_S))

    def _predict_ballistic(
        self, x: np.ndarray, P: np.ndarray, dt_ns: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predict a stack of one over ``dt_ns`` with the ballistic model."""
        cfg = self.config
        return predict(x, P, dt_ns / NS_PER_S, 0.0, cfg.ballistic_accel_psd, 0.0, cfg.max_step_s)

    def to_ballistic(self, trk: Track, burnout_ns: int) -> None:
        """Switch ``trk`` to BALLISTIC (its row already conditioned on zero thrust)."""
        self.set_mode(trk, Mode.BALLISTIC)
        trk.burnout_ns = burnout_ns
        self.rows.fade[trk.row, 0] = 0.0
        trk.plume.snapshots.clear()
        trk.plume.bright = None
        trk.plume.bright_run = 0
        if trk.shadow is not None:
            self.rows.remove([trk.shadow_row])
            trk.shadow = None

    def reopen_thrust(self, trk: Track) -> None:
        """Back to BOOST: the thrust estimate reopens with its initial prior."""
        self.rows.apply(trk.row, open_accel, self.config.init_accel_sigma_mps2)
        self.set_mode(trk, Mode.BOOST)
        self.rows.fade[trk.row, 0] = 0.0
        trk.plume.dim_run = 0

    def check_maneuvers(self, updated: list[Track]) -> None:
        """Reopen the thrust of the updated ballistic tracks whose innovations grew."""
        fade, limit = self.rows.fade[:, 0], self.config.maneuver_nis
        for trk in updated:
            if trk.mode == Mode.BALLISTIC and fade[trk.row] > limit:
                self.reopen_thrust(trk)
                trk.plume.bright_seen = False  # no plume seen: the shadow test decides burnout

    def shadow_candidates(self, touched: list[Track], t_ns: int) -> list[Track]:
        """The tracks whose shadow test may start, end or restart at data time ``t_ns``,
        in creation order: ``touched`` (updated or created by this frame), those switched
        to BOOST since the last call and those whose test's hold time ended. Any other
        track's test waits on an update, so skipping it changes nothing."""
        out = {trk.key: trk for trk in touched}
        out.update(self._to_boost)
        self._to_boost = {}
        ends = self._hold_ends
        while ends and ends[0][0] <= t_ns:
            trk = heapq.heappop(ends)[2]
            out[trk.key] = trk
        return [out[k] for k in sorted(out) if not out[k].deleted]

    def run_shadow_tests(self, tracks: list[Track], t_ns: int) -> None:
        """Start, restart, drop or conclude the burnout shadow test of each boosting
        track of ``tracks`` (see :meth:`shadow_candidates`); a concluded test (zero
        thrust fits) switches the track to BALLISTIC."""
        cfg = self.config
        hold_ns = self._hold_ns
        drop: list[int] = []
        spawn: list[Track] = []
        for trk in tracks:
            sh = trk.shadow
            if trk.mode != Mode.BOOST:
                continue
            if sh is None:
                if trk.update_count >= _MIN_UPDATES_FOR_SHADOW and not trk.plume.bright_seen:
                    spawn.append(trk)
                continue
            running = (
                t_ns - sh.start_ns < hold_ns
                or sh.count < _SHADOW_UPDATES_PER_S * cfg.burnout_hold_s
            )
            if running and not sh.failed and not trk.plume.bright_seen:
                continue
            drop.append(trk.shadow_row)
            trk.shadow = None
            if trk.plume.bright_seen:  # the plume tells burnout better than the shadow
                continue
            if not sh.failed and sh.nis_sum <= _burnout_nis_limit(sh.count):
                # Burnout: thrust has been zero over the whole test window, so the
                # track's own (honest) estimate is conditioned on zero thrust now.
                self.rows.apply(trk.row, condition_on_zero_accel)
                self.to_ballistic(trk, sh.start_ns)
            else:  # thrust on: restart the test from now
                spawn.append(trk)
        self.rows.remove(sorted(drop))
        for trk in spawn:
            r = trk.row
            xs, Ps = condition_on_zero_accel(self.rows.x[r : r + 1], self.rows.P[r : r + 1])
            trk.shadow = ShadowTest(start_ns=t_ns)
            self.rows.append(xs[0], Ps[0], trk, True, t_ns)
            self._pushes += 1
            heapq.heappush(self._hold_ends, (t_ns + hold_ns, self._pushes, trk))

    # ------------------------------------------------------------------ air
    def air_transitions(
        self, tracks: list[Track], rows: np.ndarray, height: np.ndarray, climb: np.ndarray
    ) -> None:
        """BALLISTIC -> DRAG when descending into the air, DRAG -> BALLISTIC when climbing
        out (``rows``, ``height`` m and radial speed ``climb`` m/s per track)."""
        for k, trk in enumerate(tracks):
            if trk.deleted:
                continue
            if trk.mode == Mode.BALLISTIC and height[k] < ATMOSPHERE_TOP_M and climb[k] < 0.0:
                self.rows.apply(int(rows[k]), open_accel, _REENTRY_ACCEL_SIGMA)
                self.set_mode(trk, Mode.DRAG)
            elif trk.mode == Mode.DRAG and height[k] > ATMOSPHERE_TOP_M and climb[k] > 0.0:
                self.rows.apply(int(rows[k]), condition_on_zero_accel)
                self.set_mode(trk, Mode.BALLISTIC)
