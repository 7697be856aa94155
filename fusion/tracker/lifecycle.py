"""Every status transition of a track, on data time (DESIGN §3).

TENTATIVE -> CONFIRMED (:meth:`Lifecycle.try_confirm`): M-of-N 1-s bins with an update,
enough updates, enough distinct sensors (two for a bright plume, else three), a
consistent mean NIS, and, low down, an Earth-relative velocity clearly non-zero (a
source that never moves is Earth-fixed for good and never confirmed).
CONFIRMED -> COASTING (:meth:`Lifecycle.expire`): no update for ``coast_after_s``, or a
boosting track whose range one satellite cannot hold (``uncertain``: silent until a
second satellite pins it).
COASTING -> CONFIRMED (:meth:`Lifecycle.recover`): updated again (and range held).
any -> DELETED (:meth:`Lifecycle.expire`, :meth:`Lifecycle.merge`): timeouts, position
uncertainty, below ground, or the weaker of two tracks of one object. Deleted tracks are
reported once more, then dropped with their rows (:meth:`Lifecycle.reap`).

The periodic checks run four times a second of data time (merging once a second), so
the outcome does not depend on the frame rate.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .. import kernels
from ..association import chi2_quantile
from ..config import FusionConfig
from ..constants import ATMOSPHERE_TOP_M
from ..domain import NS_PER_S, TrackStatus
from ..dynamics import POS, VEL, cross_omega, ellipsoid_height, norm3
from .crowd import CrowdHold
from .rows import StateRows
from .track import NIS_WINDOW, Mode, Track, seen_horizon_ns

_LIFECYCLE_TICK_NS = 250_000_000  # life-cycle checks four times a second of data time
_MERGE_TICK_NS = NS_PER_S  # merge test once a second of data time
_DELETE_BELOW_M = -2_000.0  # m; a track predicted this far underground has impacted
_GHOST_BELOW_M = -50_000.0  # m; a tentative track this deep is a ghost of two rays
_FEW_TO_SCREEN = 16  # tracks up to which expire tests each one (no vectorised screen)
_BOOST_SIGMA_HARD_FACTOR = 10.0  # an uncertain boost track is dropped at 10x the soft limit
_MERGE_SEARCH_M = 20_000.0  # m; only tracks this close are tested for merging (the
# chi-square test decides; the radius only spares the 6-D solve for far pairs)
_NIS_PROBABILITY = 0.999  # chi-square quantile the mean NIS must stay within to confirm
_PLUME_RUN_TO_CONFIRM = 2  # bright detections in a row: a plume, two sensors suffice


class Lifecycle:
    """Status transitions of the tracks whose states are in ``rows``."""

    #: young tracks in a crowd wait for confirmation (.crowd; set by the tracker; class
    #: default: none, as in checkpoints from before it)
    hold: CrowdHold | None = None

    def __init__(self, config: FusionConfig, rows: StateRows) -> None:
        self.config = config
        self.rows = rows
        self._last_tick: int | None = None
        self._last_merge_tick: int | None = None
        self.status_changes: list[Track] = []  # since the reports last took them
        self._deleted: list[Track] = []  # marked deleted, not yet reaped
        # mean NIS limit of n 2-D innovations, n = 1..NIS_WINDOW
        self._nis_limit = {
            n: float(chi2_quantile(_NIS_PROBABILITY, 2 * n) / n) for n in range(1, NIS_WINDOW + 1)
        }

    def _set_status(self, trk: Track, status: TrackStatus) -> None:
        trk.status = status
        trk.status_changed = True
        self.status_changes.append(trk)

    def take_status_changes(self) -> list[Track]:
        """The tracks whose status changed since the last call (may repeat a track)."""
        out, self.status_changes = self.status_changes, []
        return out

    def mark_deleted(self, trk: Track) -> None:
        """Any status -> DELETED (reported once more, then reaped)."""
        trk.deleted = True
        self._deleted.append(trk)
        self._set_status(trk, TrackStatus.DELETED)

    def recover(self, trk: Track) -> None:
        """A coasting track was updated: confirmed again, unless it is a boost track whose
        position sigma still exceeds ``max_boost_position_sigma_m``."""
        if trk.status != TrackStatus.COASTING:
            return
        if trk.uncertain:
            # back from a single-satellite spell once range is held again
            r = trk.row
            sigma = float(np.sqrt(np.trace(self.rows.P[r, POS, POS])))
            trk.uncertain = sigma > self.config.max_boost_position_sigma_m
        if not trk.uncertain:
            self._set_status(trk, TrackStatus.CONFIRMED)

    def confirm_updated(self, updated: list[Track], t_ns: int) -> None:
        """Try to confirm every tentative track of ``updated`` (those the current frame
        updated)."""
        for trk in updated:
            if trk.status == TrackStatus.TENTATIVE:
                self.try_confirm(trk, t_ns)

    def try_confirm(self, trk: Track, t_ns: int) -> None:
        """TENTATIVE -> CONFIRMED if the evidence is complete (module docstring)."""
        cfg = self.config
        if trk.earth_fixed or (self.hold is not None and self.hold.holds(trk, t_ns)):
            return
        now_bin = t_ns // NS_PER_S
        if trk.update_count < cfg.confirm_min_updates:
            return
        r = trk.row
        if self.rows.hits_since(r, now_bin - cfg.confirm_n) < cfg.confirm_m:
            return
        if self.rows.score[r] < 0.0:
            return  # the satellites' looks so far say ghost rather than object (.existence)
        pos, vel = self.rows.x[r, POS], self.rows.x[r, VEL]
        h = float(ellipsoid_height(pos))
        # Two satellites suffice for a burning plume (a launch is often seen by two only);
        # a dim source (two-ray ghosts of fires, glint, clutter) needs a third satellite,
        # unless it has coasted on a ballistic path long enough (_coasting_pair).
        plume = trk.plume.bright_run >= _PLUME_RUN_TO_CONFIRM
        launch = plume and h <= cfg.confirm_two_sensor_max_altitude_m
        need = 2 if plume else cfg.confirm_min_sensors
        recent = t_ns - cfg.confirm_n * NS_PER_S
        seen = sum(1 for seen_ns in trk.sensors_seen.values() if seen_ns > recent)
        if seen < need and not (seen >= 2 and self._coasting_pair(trk, h, t_ns)):
            return
        recent_nis = self.rows.recent_nis(r)
        n = len(recent_nis)
        if n == 0 or sum(recent_nis) / n > self._nis_limit[n]:
            return
        if h < cfg.confirm_min_altitude_m and not self._moving(trk, pos, vel, launch, t_ns):
            return
        self._set_status(trk, TrackStatus.CONFIRMED)

    def _coasting_pair(self, trk: Track, height_m: float, t_ns: int) -> bool:
        """``trk`` may confirm with two satellites: a body coasting above the air (BALLISTIC,
        no plume ever seen, above ``ATMOSPHERE_TOP_M``) tracked for at least
        ``confirm_two_sensor_coast_s`` (a two-ray ghost drifts off a ballistic path as the
        satellites move; a third satellite is not always there)."""
        cfg = self.config
        return (
            trk.mode == Mode.BALLISTIC
            and not trk.plume.bright_seen
            and height_m > ATMOSPHERE_TOP_M
            and (t_ns - trk.created_ns) >= cfg.confirm_two_sensor_coast_s * NS_PER_S
        )

    def _moving(
        self, trk: Track, pos: np.ndarray, vel: np.ndarray, launch: bool, t_ns: int
    ) -> bool:
        """The Earth-relative velocity is clearly non-zero; a source still at rest after
        ``earth_fixed_after_s`` is marked Earth-fixed for good."""
        cfg = self.config
        v_rel = vel - cross_omega(pos)
        speed = float(np.linalg.norm(v_rel))
        m2 = float(v_rel @ np.linalg.solve(self.rows.P[trk.row, VEL, VEL], v_rel))
        # A bright plume low down (a launch) needs less evidence of motion than a
        # dim source, which may be a fire or glint.
        need_m2 = cfg.confirm_velocity_chi2_plume if launch else cfg.confirm_velocity_chi2
        if speed < cfg.confirm_min_earth_speed_mps or m2 < need_m2:
            if (t_ns - trk.created_ns) / NS_PER_S > cfg.earth_fixed_after_s:
                trk.earth_fixed = True  # still not moving: Earth-fixed for good
            return False
        return True

    def tick_due(self, t_ns: int) -> bool:
        """True once per life-cycle tick of data time (the periodic checks run then)."""
        tick = t_ns // _LIFECYCLE_TICK_NS
        due = tick != self._last_tick
        self._last_tick = tick
        return due

    def expire(
        self,
        tracks: list[Track],
        t_ns: int,
        height: np.ndarray,
        pos_sigma: np.ndarray,
    ) -> None:
        """Coast and delete on data time: ``height`` (m) and ``pos_sigma`` (m,
        sqrt(trace P_rr)) per track, in the order of ``tracks`` (only the tracks
        :func:`_unsettled` names are looked at one by one)."""
        cfg = self.config
        for k in _unsettled(tracks, t_ns, height, pos_sigma, cfg):
            trk = tracks[k]
            quiet_s = (t_ns - trk.last_update_ns) / NS_PER_S
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
                            self._set_status(trk, TrackStatus.COASTING)
                else:
                    limit = cfg.max_position_sigma_m
                delete = quiet_s > cfg.delete_after_s or pos_sigma[k] > limit
                if not delete and trk.status == TrackStatus.CONFIRMED:
                    if quiet_s > cfg.coast_after_s:
                        self._set_status(trk, TrackStatus.COASTING)
            if trk.status != TrackStatus.TENTATIVE and height[k] < _DELETE_BELOW_M:
                delete = True  # impacted
            elif height[k] < _GHOST_BELOW_M:
                delete = True  # a tentative ghost deep underground
            if delete:
                self.mark_deleted(trk)

    def merge_due(self, t_ns: int) -> bool:
        """True once per merge tick of data time."""
        merge_tick = t_ns // _MERGE_TICK_NS
        if merge_tick == self._last_merge_tick:
            return False
        self._last_merge_tick = merge_tick
        return True

    def merge(self, tracks: list[Track], t_ns: int) -> None:
        """Delete the weaker of every two live tracks whose 6-D states agree within
        ``merge_chi2`` (one object tracked twice) at data time ``t_ns``, unless one look
        of a satellite resolved them within ``SEEN_KEPT_NS`` (:func:`_resolved`).

        Candidates are the pairs closer than ``_MERGE_SEARCH_M`` (a k-d tree, not all
        pairs), taken in row-major order of ``live`` (i < j); a batched solve screens
        them and the few that may pass are decided one by one with the exact test, in
        that order, skipping pairs with a track already deleted or resolved."""
        live = [t for t in tracks if not t.deleted]
        if len(live) < 2:
            return
        rows = np.array([t.row for t in live])
        x6 = self.rows.x[rows, :6]
        P6 = self.rows.P[rows][:, :6, :6]
        chi2_max = self.config.merge_chi2
        ii, jj = _candidates(x6[:, :3], np.einsum("nii->n", P6[:, :3, :3]), chi2_max)
        if ii.size == 0:
            return
        since = seen_horizon_ns(t_ns, self.config.confirm_n)
        e = x6[ii] - x6[jj]
        S = P6[ii] + P6[jj]
        for k in np.flatnonzero(_may_pass(e, S, chi2_max)):
            a, b = live[ii[k]], live[jj[k]]
            # resolved first: in a raid nearly every candidate was resolved by a look
            # (a dictionary test, no solve); either test alone keeps the pair
            if a.deleted or b.deleted or _resolved(a, b, since):
                continue
            try:
                d2 = float(e[k] @ np.linalg.solve(S[k], e[k]))
            except np.linalg.LinAlgError:
                continue
            if d2 > chi2_max:
                continue
            self.mark_deleted(min((a, b), key=_merge_rank))

    def reap(self, tracks: list[Track]) -> tuple[list[Track], list[Track]]:
        """Drop deleted tracks (after their DELETED reports) and their rows; returns the
        live tracks and the reaped ones (no work per live track when none was deleted)."""
        if not self._deleted:
            return tracks, []
        gone, self._deleted = self._deleted, []
        rows: list[int] = []
        for trk in gone:
            if trk.shadow is not None:
                rows.append(trk.shadow_row)
            rows.append(trk.row)
        self.rows.remove(sorted(rows))
        return [t for t in tracks if not t.deleted], gone


def _unsettled(
    tracks: list[Track], t_ns: int, height: np.ndarray, pos_sigma: np.ndarray, cfg: FusionConfig
) -> list[int]:
    """Indices of ``tracks`` whose expiry test (:meth:`Lifecycle.expire`) may change
    something at data time ``t_ns``: every track but the settled ones, which are not
    tentative, were updated within ``coast_after_s`` and ``delete_after_s``, have a
    position sigma ``pos_sigma`` (m) within their mode's soft limit (boost:
    ``max_boost_position_sigma_m``, else ``max_position_sigma_m``) and a ``height`` (m)
    at or above ``_DELETE_BELOW_M``: for those the test coasts, marks and deletes
    nothing. One vectorised pass (a raid's thousand tracks, four times a second); the
    quiet time is the test's own float (``(t_ns - last) / NS_PER_S``, exact integers
    divided once, as Python divides them), NaN is never settled. A few tracks are all
    named (the arrays would cost more than the test)."""
    n = len(tracks)
    if n <= _FEW_TO_SCREEN:
        return list(range(n))
    tentative, boost = TrackStatus.TENTATIVE, Mode.BOOST
    last = np.fromiter((t.last_update_ns for t in tracks), np.int64, n)
    held = np.fromiter((t.status != tentative for t in tracks), bool, n)
    boosting = np.fromiter((t.mode == boost for t in tracks), bool, n)
    quiet_s = (t_ns - last) / NS_PER_S
    limit = np.where(boosting, cfg.max_boost_position_sigma_m, cfg.max_position_sigma_m)
    settled = (
        held
        & (quiet_s <= min(cfg.coast_after_s, cfg.delete_after_s))
        & (pos_sigma <= limit)
        & (height >= _DELETE_BELOW_M)  # (_GHOST_BELOW_M lies deeper)
    )
    return np.flatnonzero(~settled).tolist()


def _candidates(
    pos: np.ndarray, trace: np.ndarray, chi2_max: float
) -> tuple[np.ndarray, np.ndarray]:
    """The merge's candidate pairs of positions ``pos`` (N, 3) m with position covariance
    traces ``trace`` (N,) m^2: :func:`near_pairs` within ``_MERGE_SEARCH_M`` less those
    farther apart than their covariances allow (``e^T S^-1 e >= |e_r|^2 / tr(S_rr)``, the
    position block's marginal and its largest eigenvalue: ``|e_r|^2 > chi2_max tr (1 +
    1e-9)`` is out without a solve; the margin is far above rounding, so a screen summing
    in another order drops no pair the exact test could keep). Compiled, the search and
    the screen in one pass (:func:`..kernels.near_pairs`), else numpy; row-major order."""
    finite = np.flatnonzero(np.all(np.isfinite(pos), axis=1))
    if finite.size >= 2 and chi2_max > 0.0:
        compiled = kernels.near_pairs(pos[finite], _MERGE_SEARCH_M, trace[finite], chi2_max)
        if compiled is not None:
            return finite[compiled[0]], finite[compiled[1]]
    ii, jj = near_pairs(pos, _MERGE_SEARCH_M)
    e_r = pos[ii] - pos[jj]
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.einsum("ki,ki->k", e_r, e_r) > chi2_max * (trace[ii] + trace[jj]) * (1.0 + 1e-9)
    return ii[~out], jj[~out]


def near_pairs(pos: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)``, ``i < j``, in row-major order, of positions ``pos`` (N, 3)
    (m) less than ``radius`` (m) apart: the pairs ``np.nonzero(np.triu(d < radius))`` of
    the full distance matrix gives, found with a k-d tree in O(N log N + pairs), or
    compiled (:func:`..kernels.near_pairs`: a sweep, the same pairs).

    The tree (its own rounding) is asked for a slightly larger radius; the distance test
    that decides is the full matrix's own expression. Non-finite positions pair with
    nothing (their distances compare false).
    """
    finite = np.flatnonzero(np.all(np.isfinite(pos), axis=1))
    if finite.size < 2:
        return np.zeros(0, int), np.zeros(0, int)
    compiled = kernels.near_pairs(pos[finite], radius)  # (a sweep: ..kernel_pairs)
    if compiled is not None:
        return finite[compiled[0]], finite[compiled[1]]  # (finite ascends: still row-major)
    tree = cKDTree(pos[finite])
    found = tree.query_pairs(radius * (1.0 + 1e-9) + 1e-6, output_type="ndarray")
    if found.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    a, b = finite[found[:, 0]], finite[found[:, 1]]
    ii, jj = np.minimum(a, b), np.maximum(a, b)
    keep = norm3(pos[ii] - pos[jj]) < radius
    # row-major order: sort the pairs' flat indices i * N + j (unique; lexsort is ~30x
    # slower)
    n = pos.shape[0]
    flat = np.sort(ii[keep].astype(np.int64) * n + jj[keep])
    return flat // n, flat % n


def _may_pass(e: np.ndarray, S: np.ndarray, chi2_max: float) -> np.ndarray:
    """Screen of the merge test over K candidate pairs: False only where ``e^T S^-1 e``
    (``e`` (K, 6) state differences, ``S`` (K, 6, 6) summed covariances) surely exceeds
    ``chi2_max``. One batched solve; the margin covers the summation order of the
    batched dot product (the exact per-pair test decides the rest). A singular ``S``
    in the batch screens nothing out."""
    try:
        v = np.linalg.solve(S, e[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.ones(e.shape[0], bool)
    d2 = np.einsum("ki,ki->k", e, v)
    slack = 1e-9 * np.einsum("ki,ki->k", np.abs(e), np.abs(v))
    return ~(d2 - slack > chi2_max)


def _resolved(a: Track, b: Track, since_ns: int) -> bool:
    """Both tracks took a detection of the same look of one sensor after ``since_ns``
    (the assignment gives a look's detection to one track only): that sensor resolved
    two objects, so the two tracks are not one object tracked twice, however close their
    states. Older looks are not read (``sensors_seen`` keeps only the recent ones)."""
    seen_b = b.sensors_seen
    return any(t > since_ns and seen_b.get(s) == t for s, t in a.sensors_seen.items())


def _merge_rank(trk: Track) -> tuple:
    """The track to drop ranks lowest: tentative before confirmed, fewer updates, then
    the younger one."""
    return (trk.status != TrackStatus.TENTATIVE, trk.update_count, -trk.key)
