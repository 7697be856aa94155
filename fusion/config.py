"""Tunables of the fusion core, one frozen dataclass with documented defaults.

Every field carries its unit in its name or its comment. ``FusionConfig.from_mapping``
builds one from a plain mapping (a TOML table, recording metadata) and raises
``ValueError`` naming the offending key; ``to_mapping`` gives the plain dict back
(what the recording metadata stores as JSON).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class FusionConfig:
    """All tunables of the tracking core (SI units: m, s, m/s, rad)."""

    # --- ordering and reporting (DESIGN §6) ---
    allowed_lateness_s: float = 6.0  # s; a frame this far behind its sensor's latest is LATE
    report_interval_s: float = 1.0  # s of data time between two reports of one track

    # --- association ---
    gate_probability: float = 0.9999  # chi-square gate on the 2-D LOS innovation
    boost_gate_probability: float = 0.99999  # wider gate while a track is accelerating
    thread_bonus: float = 16.0  # cost (d2 units) off a pair that continues the detection
    # thread the track holds from that sensor, and onto one another track holds; 0 = off
    crowd_min_gated: int = 3  # a BOOST track below alias_min_altitude_m whose gate holds
    # this many detections, one in another track's gate too, is in a crowd (tracker/crowd.py)
    crowd_hold_s: float = 0.0  # s; a track in a crowd is not confirmed younger (0 = off)
    crowd_surplus_looks: int = 2  # a tentative BOOST track that takes no detection while
    # others take every one inside its gate, this many looks in a row, is deleted (0 = off)
    stream_min_group: int = 3  # confirmed BOOST tracks of one pad stream near one another
    # (itself counted) whose laggards are pulled to the stream's velocity (tracker/stream.py;
    # 0 = off)
    stream_regroup_min: int = 0  # held BOOST tracks within 10 km one look must strain at
    # once, out of phase with their last update, to get velocity hypotheses on the stream's
    # aliases (tracker/regroup.py; 0 = off, the default: 3 measured no better on the ten
    # dense seeds, stops 23 and 24, DESIGN §6)

    # --- negative evidence: looks without a detection (fusion/tracker/existence.py) ---
    existence: bool = True  # delete tracks the satellites look at and do not see (ghosts)
    existence_pd: float = 0.8  # detection probability of a real object per look (SPRT H1)
    ghost_pd: float = 0.3  # ... of a ghost (two rays crossing, a lost track) (SPRT H0)
    existence_delete_llr: float = 8.0  # a track whose log-likelihood ratio real : ghost
    # falls below minus this is deleted (about 1 in 3,000 for a real one)
    existence_max_score: float = 4.0  # cap of that ratio: a track gone ghost is found fast
    look_range_fraction: float = 0.95  # a look counts inside this share of the largest
    # range at which a confirmed track has been detected ...
    look_grazing_margin_m: float = 30_000.0  # m; ... and this far above the lowest limb
    # clearance of one (the sensors' limits are learned, not assumed)

    # --- initiation (two-ray triangulation) ---
    init_window_s: float = 1.0  # s; pair unassociated detections of two sensors this close in time
    init_min_angle_deg: float = 5.0  # deg; smallest crossing angle of two initiating rays
    init_miss_sigmas: float = 4.0  # rays must pass within this many geometric sigmas
    init_max_speed_mps: float = 8000.0  # m/s; target motion allowance between the two looks
    init_velocity_sigma_mps: float = 2500.0  # m/s per axis; velocity prior of a new track
    init_accel_sigma_mps2: float = 40.0  # m/s^2 per axis; thrust prior of a new track
    init_cloud_radius_m: float = 30_000.0  # m; a new track above the air starts from the
    # velocity of the held ballistic tracks this close when they agree (0: never)
    alias_hypotheses: int = 6  # siblings a young boost track in a stream may branch into
    # at the look that fixes its velocity (tracker/aliases.py; 0 = off)
    alias_branch_min_age_s: float = 0.5  # s; a track branches no younger than this ...
    alias_branch_velocity_sigma_mps: float = 400.0  # ... while some velocity axis's
    # sigma still exceeds this (m/s): its velocity not yet known to one alias spacing/s
    alias_min_altitude_m: float = 50_000.0  # m; tracks lower do not branch (near the pad
    # a stream's objects are 20-300 m apart and the at-rest prior is nearly right)
    alias_family_max: int = 12  # live members of one family a member may branch up to
    # (counted before the look: members branching in one look may exceed it together)
    alias_decide_s: float = 3.0  # s after the branch at which the family keeps its best
    alias_miss_cost: float = 9.0  # cost (NIS units) of a look that updated a sibling only
    init_min_altitude_m: float = -20_000.0  # m; intersections below this are ghosts
    init_max_altitude_m: float = 3_000_000.0  # m; intersections above this are ghosts
    max_range_m: float = 8_000_000.0  # m; an intersection farther from a sensor is a ghost

    # --- confirmation (M-of-N over 1-s bins of data time) ---
    confirm_m: int = 4  # bins with at least one update ...
    confirm_n: int = 6  # ... among the last N bins
    confirm_min_sensors: int = 3  # distinct sensors that updated the track in the last
    # confirm_n s (ghost check); 2 suffice for a bright plume
    confirm_two_sensor_coast_s: float = 15.0  # s; a dim BALLISTIC track above the air seen
    # by two satellites only is confirmed once it is this old (1e9: never)
    confirm_two_sensor_max_altitude_m: float = 20_000.0  # m; a bright plume below this is a
    # launch: it needs less evidence of motion (confirm_velocity_chi2_plume)
    confirm_min_updates: int = 8  # updates (the two initiating looks count) before confirming
    confirm_velocity_chi2: float = 25.0  # Earth-relative velocity must differ from 0 by this
    # (Mahalanobis squared, 3 dof: 1e-5 chance for a fixed source)
    confirm_velocity_chi2_plume: float = 16.0  # the same for a bright plume low down (1e-3)
    earth_fixed_after_s: float = 20.0  # s; a tentative track still at rest this long is
    # Earth-fixed (fire, glint) for good: never confirmed, never reported
    confirm_min_earth_speed_mps: float = 40.0  # m/s; and exceed this (hot spots sit still)
    confirm_min_altitude_m: float = 30_000.0  # m; above this the Earth-fixed test is waived

    # --- life cycle on data time ---
    tentative_timeout_s: float = 4.0  # s without an update: a tentative track is deleted
    tentative_max_age_s: float = 20.0  # s; a track not confirmed by then is deleted (except
    # an Earth-fixed source, kept so that its detections start no new tracks)
    coast_after_s: float = 4.0  # s without an update: a confirmed track coasts
    delete_after_s: float = 40.0  # s without an update: a coasting track is deleted
    max_position_sigma_m: float = 3_000.0  # m, sqrt(trace P_rr); a ballistic track this
    # uncertain is deleted (a single satellite left cannot hold range: better a new track)
    max_boost_position_sigma_m: float = 5_000.0  # m; a thrusting track this uncertain (one
    # satellite left) coasts unreported until a second satellite pins it again; dropped at 10x
    merge_chi2: float = 22.5  # two tracks whose 6-D states differ by less (chi-square, 6 dof,
    # 0.999) are one: the younger, less-updated one is deleted

    # --- dynamics and process noise ---
    ballistic_accel_psd: float = 1e-6  # m^2/s^3; white acceleration PSD in ballistic flight
    boost_jerk_psd: float = 30.0  # m^2/s^5; random-walk thrust-acceleration PSD in boost
    reentry_jerk_psd: float = 50.0  # m^2/s^5; same for drag deceleration in reentry
    accel_time_constant_s: float = 60.0  # s; Singer decorrelation time of the acceleration
    max_step_s: float = 2.0  # s; largest RK4 step when predicting tracks
    burnout_hold_s: float = 10.0  # s a zero-thrust shadow must fit before burnout is declared
    maneuver_memory: float = 0.95  # fading-memory factor of the ballistic NIS sum (mean 2/(1-m))
    boost_inflate_memory: float = 0.8  # fading-memory factor of the boost NIS sum (mean 10)
    boost_inflate_nis: float = 20.0  # fading NIS sum above which a boost track's thrust
    # covariance is widened by init_accel_sigma_mps2 (staging, thrust cutoff) ...
    boost_inflate_lag_s: float = 1.5  # s; ... as if the thrust had changed this long ago
    boost_intensity_threshold: float = 20.0  # detection intensity x (range / 1000 km)^2 at
    # or above which the object is a burning plume (cold body ~1, plume ~100-1000)
    burnout_dim_count: int = 3  # dark detections in a row after a plume: burnout
    maneuver_nis: float = 90.0  # fading NIS sum above which a ballistic track reopens thrust
    glide_jerk_psd: float = 5.0  # m^2/s^5; Singer jerk PSD of lift + drag in GLIDE
    glide_min_lift_mps2: float = 3.0  # m/s^2; mean upward acceleration normal to the air
    # velocity above which a DRAG track that burned out glides ...
    glide_lift_memory: float = 0.98  # ... fading memory of that mean per life-cycle tick
    glide_entry_ticks: int = 40  # ... after this many ticks (4 per s) of level flight
    glide_max_descent_deg: float = 10.0  # deg; no GLIDE entry on a steeper descent
    glide_dive_deg: float = 15.0  # deg below level: a gliding track dives (DRAG, REENTRY)

    # --- impact and launch estimates ---
    impact_refresh_s: float = 5.0  # s of data time between two impact predictions
    impact_ballistic_coefficient: float = 30_000.0  # kg/m^2; assumed below 100 km
    impact_ballistic_coefficient_log_sigma: float = 1.0  # 1-sigma of ln(beta): the
    # simulator's vehicles span 5,000-50,000 kg/m^2 (ln RMS 1.1 about 30,000; an MRBM's
    # 10,000 sat 1.6 sigma out at 0.7, its impact outside 3 sigma: DESIGN §6, issue 12)
    impact_max_flight_s: float = 4_000.0  # s; give up predicting beyond this
    impact_step_s: float = 60.0  # s; RK4 step above the atmosphere for impact prediction
    impact_atmosphere_step_s: float = 0.5  # s; smallest RK4 step in the air (<= 10 km up)
    launch_fit_s: float = 20.0  # s of the earliest boost states used to back-extrapolate
    launch_max_first_altitude_m: float = 60_000.0  # m; launch estimated only for a track
    # first seen below this

    # --- sensor registration (pointing bias per sensor, fusion/registration.py) ---
    registration: bool = True  # estimate and apply each sensor's pointing bias
    registration_prior_sigma_rad: float = 10e-6  # rad per axis; bias prior (before evidence)
    registration_drift_rad_per_hour: float = 5e-6  # rad per axis after 1 h (random walk)
    registration_window_s: float = 20.0  # s of a track's detections solved together
    registration_max_sensors: int = 256  # sensors estimated (later ones are left alone)
    registration_max_windows: int = 48  # tracks gathering evidence at once: a raid's
    # thousand tracks add no information a few dozen lack, only cost (issue 13)
    registration_apply_chi2: float = 11.34  # an estimate is applied once th' P^-1 th
    # exceeds this (3 dof, 99 %): an unbiased sensor keeps its lines of sight
    registration_consider_looks: float = 25.0  # looks of one sensor a track's estimate
    # averages: the bias error, common to them, is counted this many times in each look's
    # variance (a Schmidt-Kalman consider term for a white-noise filter), that variance
    # under the prior rescaled to the biases' estimated size (registration.Registration.scale)
    registration_consider_looks_max: float = 100.0  # > the above: a ballistic track's
    # update counts the bias variance as many times as its looks per sensor in ballistic
    # flight (what its near-constant state averages), up to this; the gate and other modes
    # keep the above; the cap shrinks with the bias scale. Set to the above: every update
    # alike, as before stop 18 (DESIGN §6, *Looks per track*)
    registration_site_memory_s: float = 0.0  # s; a hot spot's earlier windows count in
    # a new one's with weight exp(-age / this) (its position is one unknown across them,
    # registration_sites.SiteNormals); 0: each window alone, its position eliminated in it
    registration_site_drift: bool = False  # True: a hot spot's earlier windows count in a
    # new one's carried forward by the biases' random walk (registration_drift_rad_per_hour;
    # the information filter's prediction, registration_sites.SiteNormals.predicted)
    # instead of faded, so only the drift limits the memory (registration_site_memory_s unused)
    registration_common_once: bool = True  # a ballistic track's report adds the part of
    # its position covariance its sensors' correlated bias errors leave out when taken one
    # by one (a rotation common to them does not average out; registration_common), where
    # the bias scale is 1; the state is not moved
    registration_track_memory_s: float = 0.0  # s; a confirmed ballistic track's earlier
    # windows count in a new one's with weight exp(-age / this) (its state is one unknown
    # along its arc, registration_tracks.Arc); 0: each window alone

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FusionConfig:
        """Build from a mapping of field name -> value; unknown keys and bad values raise
        ``ValueError`` naming the key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"fusion config: expected a table of settings, got {type(data)}")
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key in sorted(data):
            if key not in known:
                raise ValueError(
                    f"{key}: unknown fusion setting (known: {', '.join(sorted(known))})"
                )
            kwargs[key] = _coerce(key, data[key], type(getattr(cls(), key)))
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def to_mapping(self) -> dict[str, Any]:
        """Plain dict of every setting (JSON/TOML serialisable)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> FusionConfig:
        """A copy with some settings changed (validated)."""
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def _check_open_unit(self, *names: str) -> None:
        """Raise ``ValueError`` for the first of ``names`` not in (0, 1)."""
        for name in names:
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name}: must be in (0, 1), got {value}")

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting out of its allowed range."""
        self._check_open_unit("gate_probability", "boost_gate_probability")
        if not 0 < self.confirm_m <= self.confirm_n:
            raise ValueError(
                f"confirm_m: must satisfy 0 < confirm_m <= confirm_n ({self.confirm_n}), "
                f"got {self.confirm_m}"
            )
        self._check_open_unit("maneuver_memory", "boost_inflate_memory", "glide_lift_memory")
        self._check_open_unit("existence_pd", "ghost_pd", "look_range_fraction")
        if self.ghost_pd >= self.existence_pd:
            raise ValueError(
                f"ghost_pd: must be below existence_pd ({self.existence_pd}), got {self.ghost_pd}"
            )
        if self.init_min_altitude_m >= self.init_max_altitude_m:
            raise ValueError("init_min_altitude_m: must be below init_max_altitude_m")
        nonneg = {
            "allowed_lateness_s",
            "ballistic_accel_psd",
            "init_cloud_radius_m",
            "alias_hypotheses",
            "crowd_min_gated",
            "crowd_hold_s",
            "crowd_surplus_looks",
            "stream_min_group",
            "stream_regroup_min",
            "init_min_angle_deg",
            "registration_site_memory_s",
            "registration_track_memory_s",
            "thread_bonus",
        }
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("init_m") and "altitude" in f.name:
                continue
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{f.name}: must be finite, got {v}")
            if f.name in nonneg:
                if v < 0:
                    raise ValueError(f"{f.name}: must be >= 0, got {v}")
            elif isinstance(v, int | float) and not isinstance(v, bool) and v <= 0:
                raise ValueError(f"{f.name}: must be > 0, got {v}")


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"{key}: expected a {kind.__name__}, got a boolean")
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, int | float):
            return float(value)
        raise ValueError(f"{key}: expected a number, got {value!r}")
    raise ValueError(f"{key}: unsupported setting type")  # pragma: no cover
