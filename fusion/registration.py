"""Sensor registration: each sensor's pointing bias, estimated online and applied.

Model (DESIGN §6, *Sensor registration*): a sensor's measured unit line of sight is the
true one rotated by a small rotation vector ``theta`` (rad, ECI axes): ``m ~ u + theta x
u``. All sensors' ``theta`` are one stacked vector (3 S) with a full covariance ``P_b``,
starting at zero with ``registration_prior_sigma_rad`` per axis and growing by the drift
``registration_drift_rad_per_hour``.

Evidence: the unambiguous detections (``observe``'s ``clear``) one track collected over
``registration_window_s`` from two or more sensors (confirmed ballistic or boosting
tracks), and those of one hot spot *site* (:mod:`.registration_sites`) over
``EARTH_FIXED_WINDOW_SHARE`` times that. Residuals against the track's state are ``y = E
dp / rho + E (dtheta x u) + noise``; the track's own errors are eliminated in the window
(Schur complement), so windows are independent evidence: the windows accepted over
``BATCH_S`` of data time are applied as one Kalman update in information form (their
information and gradients add; all are taken about the same estimate, which moves only
then: DESIGN §6 says how close that is to one update per window). With
``registration_site_memory_s`` > 0 a site's position, with
``registration_track_memory_s`` > 0 a ballistic track's state
(:mod:`.registration_tracks`), is eliminated over all of its windows, not once per window.

Use: :meth:`Registration.correct` rotates a frame's lines of sight back by the estimate
and widens each sigma by its uncertainty across the line of sight (consider treatment,
under the prior rescaled by the *bias scale*, :mod:`.registration_consider`);
:meth:`Registration.pair_sigma` widens a ballistic track's update more, by the looks per
sensor it has averaged. A sensor with no accepted window is left as it was.
Deterministic: the state depends only on the order of the frames.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .config import FusionConfig
from .domain import NS_PER_S, SensorFrame
from .kernel_registration import correct_rows, widened_rows
from .registration_common import SharedTerms, bit_indices
from .registration_consider import SensorTerms, bias_scale, significant
from .registration_looks import MAX_WINDOW_LOOKS, Evidence, OpenWindows, Window
from .registration_output import SensorBias, sensor_biases
from .registration_sites import (
    MIN_LOOKS,
    SiteNormals,
    Sites,
    SiteWindow,
    site_window,
)
from .registration_sites import resting as resting  # re-exported for the tracker
from .registration_tracks import Arcs, moving_equations, window_equations

MAX_ANGLE_RAD = 1e-3  # an estimate beyond this is broken: the update is rejected
OUTLIER_CHI2_FACTOR = 3.0  # a window whose chi-square exceeds this x its expectation: skipped
STALE_AFTER_S = 10.0  # s without a look after which a window is closed (track ended)
BATCH_S = 5.0  # s of data time whose accepted windows are applied as one Kalman update
PRUNE_EVERY_S = 1.0  # s of data time between two prunings of stale windows
EARTH_FIXED_WINDOW_SHARE = 3.0  # hot-spot (site) windows: this x registration_window_s
THRUSTING_WINDOW_SHARE = 0.3  # boost windows (thrust changes: short) likewise


def _with_looks(f: SensorFrame, los: np.ndarray, sigma: np.ndarray) -> SensorFrame:
    """Frame ``f`` with the lines of sight ``los`` (N, 3) and sigmas ``sigma`` (N,) rad of
    its detections replaced (float64 arrays of its shapes: its checks hold, not re-run)."""
    out = object.__new__(SensorFrame)
    out.sensor_id, out.sequence, out.time_ns = f.sensor_id, f.sequence, f.time_ns
    out.position, out.velocity, out.intensity = f.position, f.velocity, f.intensity
    out.los, out.sigma = los, sigma
    return out


def _grown(M: np.ndarray) -> np.ndarray:
    """``M`` (n, n) with three more zero rows and columns."""
    n = M.shape[0] + 3
    out = np.zeros((n, n))
    out[: n - 3, : n - 3] = M
    return out


class Registration:
    """Online pointing-bias estimator of every sensor (see the module docstring)."""

    def __init__(self, config: FusionConfig) -> None:
        self._cfg = config
        self._prior_var = config.registration_prior_sigma_rad**2
        self._q_per_s = config.registration_drift_rad_per_hour**2 / 3600.0  # rad^2/s
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self._theta = np.zeros(0)  # (3 S,) rad
        self._P = np.zeros((0, 0))  # (3 S, 3 S) rad^2
        self._windows_used = np.zeros(0, int)  # (S,)
        # theta = L b + w: how the estimate maps the true biases b, and the covariance of
        # its noise part w; they give the bias scale (DESIGN §6, *bias scale*)
        self._L = np.zeros((0, 0))  # (3 S, 3 S)
        self._Cn = np.zeros((0, 0))  # (3 S, 3 S) rad^2
        self.scale = 1.0  # estimated bias variance / prior variance, in [SCALE_MIN, 1]
        self._open = OpenWindows()  # the open windows' looks, in columns
        self._contested: dict[int, float] = {}  # key -> data time s of its last ambiguous look
        self._sites = Sites()  # hot spots, Earth-fixed (registration_sites)
        self._arcs = Arcs()  # ballistic tracks' earlier windows (registration_tracks)
        self._span = {
            Evidence.MOVING: config.registration_window_s,
            Evidence.EARTH_FIXED: config.registration_window_s * EARTH_FIXED_WINDOW_SHARE,
            Evidence.THRUSTING: config.registration_window_s * THRUSTING_WINDOW_SHARE,
        }
        self._drift_s = 0.0  # s of drift not yet added to P (added before P changes)
        self._p_version = 0  # bumped whenever P or theta change
        self._applied: dict[int, tuple[int, tuple]] = {}  # per sensor, by version: _use's
        self._terms: tuple[int, SensorTerms] | None = None  # every sensor's, by version
        self._across: tuple[np.ndarray, np.ndarray | None] = (np.zeros(0), None)  # last frame
        self.counts_common = config.registration_common_once  # reports take report_consider
        self._where = np.zeros((0, 3))  # (S, 3) m ECI: each sensor's last position
        self._t_ns: int | None = None
        self._pruned_s = -np.inf
        # windows accepted but not applied (info, gradient, columns, sensors); last update, s
        self._batch: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._batch_s = -np.inf
        self._closed: list[Window] = []  # windows closed, solved at the next update
        self.windows_total = 0  # accepted windows
        self.outliers_total = 0  # windows skipped as inconsistent with the model
        self.rejected_total = 0  # numerically broken updates, never applied
        self.contested_total = 0  # open windows dropped at an ambiguous look

    # ------------------------------------------------------------------ frames
    def correct(self, frame: SensorFrame) -> SensorFrame:
        """The frame with its lines of sight rotated back by the sensor's estimate and
        each sigma widened by the estimate's uncertainty (an estimate not significantly
        non-zero is not applied: its square widens the sigma too); the frame itself if the
        sensor has no evidence yet (or no detections). Also advances the drift."""
        self._advance(int(frame.time_ns))
        k = self._sensor(frame.sensor_id)
        self._across = (frame.sigma, None)
        if k is not None and self.counts_common:
            self._where[k] = frame.position
        if frame.los.shape[0] == 0 or k is None or self._windows_used[k] == 0:
            return frame
        applied, th, pk, tr = self._use(k)
        drift = self._q_per_s * self._drift_s  # rad^2 per axis, isotropic: adds as is
        looks = self._cfg.registration_consider_looks
        c, sigma, across = correct_rows(frame.los, th, pk, tr, drift, frame.sigma, looks, applied)
        self._across = (sigma, across)
        return _with_looks(frame, c, sigma)

    def pair_sigma(self, det_idx: np.ndarray, looks: list[int]) -> np.ndarray:
        """Sigmas (rad) of the last corrected frame's detections ``det_idx`` for updates of
        tracks whose estimates average ``looks`` looks per sensor (0: not ballistic), by
        :func:`.registration_consider.widened` (compiled: :mod:`.kernel_registration`);
        the count's cap above
        ``registration_consider_looks`` shrinks with the bias scale (a scene found
        unbiased keeps its tracks' weighting)."""
        sigma, across = self._across
        cfg = self._cfg
        k0 = cfg.registration_consider_looks
        k1 = k0 + self.scale * (cfg.registration_consider_looks_max - k0)
        return widened_rows(sigma, across, det_idx, looks, k0, k1)

    def report_consider(
        self, bits: dict[str, int]
    ) -> Callable[[np.ndarray, int], np.ndarray | None]:
        """With ``registration_common_once``: ``term(position, mask)``, the position
        covariance (3, 3) m^2 a track at ECI ``position`` (3,) m whose looks came from the
        sensors of tracker bit ``mask`` (over ``bits``, sensor id -> bit) leaves out by
        treating its sensors' bias errors as independent (:mod:`.registration_common`);
        None where there is none. Made per call, not kept."""
        terms = SharedTerms(self._P, self.scale, self._windows_used)
        of_bit, where = bit_indices(bits, self._index), self._where
        return lambda position, mask: terms.position_term(position, mask, of_bit, where)

    def _use(self, k: int) -> tuple[bool, np.ndarray, np.ndarray, float]:
        """How sensor ``k``'s estimate is used (cached until P changes): applied or not
        (theta' P_kk^-1 theta against ``registration_apply_chi2``, the pending drift
        included), theta (3,), the covariance to widen by (3, 3; under the rescaled prior,
        plus its estimate's second moment when not applied; without the pending drift;
        :class:`.registration_consider.SensorTerms`, every sensor's at once) and its
        trace."""
        hit = self._applied.get(k)
        version = self._p_version
        if hit is not None and hit[0] == version:
            return hit[1]
        if self._terms is None or self._terms[0] != version:
            st = SensorTerms(self._theta, self._P, self.scale, self._prior_var)
            self._terms = (version, st)
        st = self._terms[1]
        drift = self._q_per_s * self._drift_s
        applied = significant(st.theta[k], st.blocks[k], drift, self._cfg.registration_apply_chi2)
        used = (applied, *st.use(k, applied))
        self._applied[k] = (version, used)
        return used

    def _advance(self, t_ns: int) -> None:
        """Random-walk drift of every bias up to data time ``t_ns`` (kept as a pending
        time, added to ``P`` by :meth:`_settle` before ``P`` changes)."""
        if self._t_ns is not None and t_ns > self._t_ns:
            self._drift_s += (t_ns - self._t_ns) / NS_PER_S
        if self._t_ns is None or t_ns > self._t_ns:
            self._t_ns = t_ns

    def _settle(self) -> None:
        """Add the pending drift to ``P``."""
        if self._drift_s > 0.0 and self._q_per_s > 0.0:
            n = self._P.shape[0]
            P = self._P.copy()
            P[np.arange(n), np.arange(n)] += self._q_per_s * self._drift_s
            self._P = P
            self._p_version += 1
        self._drift_s = 0.0

    def _sensor(self, sensor_id: str) -> int | None:
        """Index of a sensor, added with the prior on first sight (None beyond the cap)."""
        k = self._index.get(sensor_id)
        if k is not None or len(self._ids) >= self._cfg.registration_max_sensors:
            return k
        self._solve_closed()  # about the estimate and P they closed at
        self._settle()
        self._p_version += 1
        k = len(self._ids)
        n = 3 * (k + 1)
        P = np.zeros((n, n))
        P[: n - 3, : n - 3] = self._P
        P[n - 3 :, n - 3 :] = self._prior_var * np.eye(3)
        self._P = P
        self._L, self._Cn = _grown(self._L), _grown(self._Cn)
        self._theta = np.concatenate([self._theta, np.zeros(3)])
        self._windows_used = np.concatenate([self._windows_used, [0]])
        self._where = np.concatenate([self._where, np.zeros((1, 3))])
        self._ids.append(sensor_id)
        self._index[sensor_id] = k  # last: a reader on another thread sees whole arrays
        return k

    # ------------------------------------------------------------------ evidence
    def observe(
        self,
        frame: SensorFrame,
        keys: list[int],
        kinds: list[Evidence],
        det_idx: np.ndarray,
        states: np.ndarray,
        clear: np.ndarray | None = None,
    ) -> None:
        """After the tracker's update: detection ``det_idx[i]`` of ``frame`` (as received,
        uncorrected) updated the track ``keys[i]`` of evidence ``kinds[i]``, whose updated
        state (9,) ECI is ``states[i]``; ``clear[i]`` (default True): that association was
        unambiguous, else left out (a boost look contests its track). Windows that span
        the window length are closed (solved at the next update). The looks are decided
        one at a time and written to their windows' columns together
        (:mod:`.registration_looks`)."""
        k = self._index.get(frame.sensor_id)
        t_s = frame.time_s
        if k is not None and len(keys):
            det = np.asarray(det_idx)
            ok = [True] * det.size if clear is None else np.asarray(clear, bool).tolist()
            opened, contested, span = self._open, self._contested, self._span
            pending, max_open = opened.open, self._cfg.registration_max_windows
            sig = np.asarray(frame.sigma, float)[det]
            opened.begin(t_s, k, frame.position, frame.los[det], sig)
            none, fixed = Evidence.NONE, Evidence.EARTH_FIXED
            for i, key, kind, clear_i in zip(range(det.size), keys, kinds, ok, strict=True):
                if kind == none:
                    continue  # the look is left out; the window waits (or is pruned)
                if kind == fixed:
                    key = self._sites.key(states[i], t_s)
                if not clear_i:
                    if kind != Evidence.THRUSTING:
                        continue  # left out (their windows mixed no objects even when kept)
                    contested[key] = t_s
                    if opened.drop(key):
                        self.contested_total += 1
                    continue
                if contested:
                    t_c = contested.get(key)
                    if t_c is not None and t_s - t_c < span[kind]:
                        continue  # contested within a window length: not yet evidence again
                w = pending.get(key)
                if w is None and len(pending) >= max_open:
                    continue  # enough tracks gather evidence already (bounded cost)
                if w is None:
                    w = opened.start(key, kind, t_s)
                elif w.kind != kind:  # a new model (burnout): closed, a new one in its place
                    done, w = opened.restart(key, kind, t_s)
                    self._close(done)
                n = opened.note(w, i, t_s, states[i])
                if t_s - w.start_s >= span[kind] or n >= MAX_WINDOW_LOOKS:
                    self._close(opened.take(key))
            opened.write()
        if t_s - self._pruned_s >= PRUNE_EVERY_S:
            self._prune(t_s)
        if (self._batch or self._closed) and t_s - self._batch_s >= BATCH_S:
            self._solve_closed()
            if self._batch:
                self._flush(t_s)

    def _prune(self, t_s: float) -> None:
        """Solve the windows of tracks quiet ``STALE_AFTER_S`` (ended: their looks still
        count); forget contests older than any window length."""
        self._pruned_s = t_s
        horizon = t_s - STALE_AFTER_S
        for key in self._open.quiet(horizon):
            self._close(self._open.take(key))
        old = t_s - max(self._span.values())
        for key in [q for q, t in self._contested.items() if t < old]:
            del self._contested[key]
        self._arcs.prune(t_s)

    def _close(self, w: Window) -> None:
        """Solve a window: with its site's or ballistic arc's earlier ones when their
        memory (``registration_site_memory_s``, ``registration_track_memory_s``) is on
        (then every window now, in order), else alone, at the track's state after its last
        look, at the next update (:meth:`_solve_closed`)."""
        cfg = self._cfg
        site_memory = cfg.registration_site_memory_s > 0.0 or cfg.registration_site_drift
        track_memory = cfg.registration_track_memory_s
        if w.kind == Evidence.EARTH_FIXED and site_memory:
            self._solve_site(w)
        elif w.kind == Evidence.MOVING and track_memory > 0.0:
            th, take = self._theta.reshape(-1, 3), self._take
            if not self._arcs.solve(w.key, w.state, w.last_s, w.looks, th, track_memory, take):
                self.rejected_total += 1
        elif site_memory or track_memory > 0.0:
            self._solve(w, np.asarray(w.state, float), w.kind, w.last_s)
        else:
            self._closed.append(w)

    def _solve_closed(self) -> None:
        """Solve the windows closed since the last update, in the order they closed (the
        moving ones numpy over all their looks, :func:`.registration_tracks.moving_equations`):
        before the estimate or P changes, so the same floats and decisions as each solved
        when it closed."""
        closed, self._closed = self._closed, []
        theta = self._theta.reshape(-1, 3)
        thrust, fixed = Evidence.THRUSTING, Evidence.EARTH_FIXED
        moving = [(w.looks, w.state, w.last_s, w.kind == thrust) for w in closed if w.kind != fixed]
        eqs = iter(moving_equations(moving, theta))
        for w in closed:
            if w.kind == fixed:
                eq = window_equations(w.looks, w.state, w.last_s, theta, True, False)
            else:
                eq = next(eqs)
            if eq is not None:
                self._update(*eq)

    def _take(self, sw: SiteWindow) -> bool:
        """Apply a joint window (a site's or an arc's): True if it is consistent (and,
        with two or more sensors, applied); one satellite's is only checked."""
        if sw.union.size < 2:  # one satellite so far: nothing on the biases yet
            return bool(np.isfinite(sw.chi2) and sw.chi2 <= OUTLIER_CHI2_FACTOR * sw.dof + 20.0)
        return self._apply(sw.info, sw.eta, sw.chi2, sw.dof, sw.union, sw.union)

    def _solve(self, w: Window, x: np.ndarray, kind: Evidence, t_now: float) -> None:
        """One Kalman update of the biases from a track's window (module docstring)."""
        fixed, thrusting = kind == Evidence.EARTH_FIXED, kind == Evidence.THRUSTING
        eq = window_equations(w.looks, x, t_now, self._theta.reshape(-1, 3), fixed, thrusting)
        if eq is not None:
            self._update(*eq)

    def _solve_site(self, w: Window) -> None:
        """One Kalman update of the biases from a hot spot's window, its site's position
        eliminated over this and every earlier accepted window of the site (faded by
        ``registration_site_memory_s``, or carried forward by the drift with
        ``registration_site_drift``; :func:`.registration_sites.site_window`): the
        information the window adds given the earlier ones, so looks of one satellite,
        or of satellites that saw the site at different times, count. A window of a site
        only one satellite has seen is kept for later; a skipped or rejected window is
        not kept."""
        times, sensors, positions, los, sigmas = w.looks
        frame = self._sites.frame(w.key, times)
        if times.size < MIN_LOOKS or frame is None:
            return
        nrm = self._sites.normals.get(w.key)
        try:
            if self._cfg.registration_site_drift:
                nrm = nrm if nrm is not None and nrm.D is not None else SiteNormals.drifting()
                nrm = nrm.predicted(w.last_s, self._q_per_s)
            else:
                nrm = (nrm or SiteNormals()).faded(w.last_s, self._cfg.registration_site_memory_s)
            looks = (sensors, positions, los, sigmas)
            sw = site_window(nrm, *frame, *looks, self._theta.reshape(-1, 3))
        except np.linalg.LinAlgError:
            self.rejected_total += 1
            return
        if sw is not None and self._take(sw):
            self._sites.normals[w.key] = sw.normals(w.last_s)

    def _update(self, A: np.ndarray, G: np.ndarray, y: np.ndarray, uniq: np.ndarray) -> None:
        """Kalman update of the biases of sensors ``uniq`` from whitened residuals
        ``y = A ds + G dtheta + N(0, I)`` with the nuisance ``ds`` (track errors)
        eliminated (Schur complement: information ``L``, ``eta`` on ``dtheta``). An
        inconsistent window is skipped; a broken update is rejected and counted."""
        try:
            AtA, AtG, Aty = A.T @ A, A.T @ G, A.T @ y
            sol = np.linalg.solve(AtA, np.concatenate([AtG, Aty[:, None]], axis=1))
            info = G.T @ G - AtG.T @ sol[:, :-1]
            eta = G.T @ y - AtG.T @ sol[:, -1]
            chi2 = float(y @ y - Aty @ sol[:, -1])
        except np.linalg.LinAlgError:
            self.rejected_total += 1
            return
        self._apply(info, eta, chi2, y.size - A.shape[1], uniq, uniq)

    def _apply(
        self,
        info: np.ndarray,
        eta: np.ndarray,
        chi2: float,
        dof: int,
        sensors: np.ndarray,
        seen: np.ndarray,
    ) -> bool:
        """Kalman update of the biases of ``sensors`` from a window's information ``info``
        (3 k, 3 k) 1/rad^2 and gradient ``eta`` (3 k,) 1/rad at the current estimate, after
        its chi-square ``chi2`` (``dof`` degrees of freedom) is checked; ``seen``: the
        sensors the window involved (its looks', or its site's). True if applied; an
        inconsistent window is skipped (``outliers_total``), a broken update rejected
        (``rejected_total``)."""
        idx = (3 * sensors[:, None] + np.arange(3)).ravel()
        info = 0.5 * (info + info.T)
        if not (np.isfinite(info).all() and np.isfinite(eta).all()):
            self.rejected_total += 1
            return False
        expect = dof + float(np.trace(info @ self._P[np.ix_(idx, idx)]))
        if not np.isfinite(chi2) or chi2 > OUTLIER_CHI2_FACTOR * expect + 20.0:
            self.outliers_total += 1
            return False
        self._batch.append((info, eta, idx, seen))
        return True

    def _flush(self, t_s: float) -> None:
        """Apply the windows accepted since the last flush (data time ``t_s``) as one
        Kalman update: their information and gradients add up, all taken about the same
        estimate (it moves only here), so this is one update per window up to rounding
        (but each window's outlier test saw P before the batch; DESIGN §6)."""
        batch, self._batch, self._batch_s = self._batch, [], t_s
        cols = np.unique(np.concatenate([b[2] for b in batch]))
        info, eta = np.zeros((cols.size, cols.size)), np.zeros(cols.size)
        for i_w, e_w, idx, _ in batch:
            at = np.searchsorted(cols, idx)
            info[np.ix_(at, at)] += i_w
            eta[at] += e_w
        self._settle()
        self._kalman(info, eta, cols, np.concatenate([b[3] for b in batch]), len(batch))

    def _kalman(
        self, info: np.ndarray, eta: np.ndarray, idx: np.ndarray, seen: np.ndarray, windows: int
    ) -> bool:
        """One Kalman update of the stacked biases from information ``info`` (k, k) 1/rad^2
        and gradient ``eta`` (k,) 1/rad at the estimate on its columns ``idx`` (k,),
        ``windows`` windows of the sensors ``seen`` (one entry per window and sensor;
        information form: the gain is ``P' H' = P_:i info (I + P_ii info)^-1``, valid for
        a singular ``info``); never applied when the result is not finite, not positive or
        beyond ``MAX_ANGLE_RAD`` (False, counted in ``rejected_total``)."""
        P_i = self._P[:, idx]  # (3 S, k)
        try:
            W = np.linalg.solve(np.eye(idx.size) + info @ P_i[idx], info)  # info (I + P_ii info)^-1
        except np.linalg.LinAlgError:
            self.rejected_total += 1
            return False
        P = self._P - P_i @ W @ P_i.T
        P += P.T
        P *= 0.5
        Pn_i = P[:, idx]
        theta = self._theta + Pn_i @ eta
        if (
            not (np.isfinite(theta).all() and np.isfinite(P).all())
            or (P.diagonal() <= 0.0).any()
            or (np.abs(theta) > MAX_ANGLE_RAD).any()
        ):
            self.rejected_total += 1
            return False
        M = Pn_i @ info  # (3 S, k): theta += M (b - theta)[idx] + noise of covariance M Pn_i'
        L = self._L - M @ self._L[idx]
        L[:, idx] += M
        Cn = self._Cn
        McT = M @ Cn[idx]
        Cn = Cn - McT - McT.T + M @ Cn[np.ix_(idx, idx)] @ M.T + M @ Pn_i.T
        self._theta, self._P, self._L, self._Cn = theta, P, L, 0.5 * (Cn + Cn.T)
        self.scale = bias_scale(self._theta, self._L, self._Cn, self._prior_var)
        self._p_version += 1
        np.add.at(self._windows_used, seen, 1)
        self.windows_total += windows
        return True

    # ------------------------------------------------------------------ output
    @property
    def time_ns(self) -> int | None:
        """Data time (ns) the estimates refer to; None while no sensor is known (then
        :meth:`estimates` is empty). Cheap: lets a recorder skip building them."""
        return int(self._t_ns or 0) if self._ids else None

    def estimates(self) -> list[SensorBias]:
        """Every known sensor's estimate, 1-sigma and 3 x 3 covariance (rad, ECI axes; the
        pending drift included; windows gathered since the last update not yet), by sensor
        id."""
        drift = self._q_per_s * self._drift_s
        index, P, theta, used = dict(self._index), self._P, self._theta, self._windows_used
        return sensor_biases(index, P, theta, used, drift, int(self._t_ns or 0))
