"""Run a scenario: satellites look, missiles fly, frames are delivered (DESIGN §3).

:func:`simulate` streams ``(log_time_ns, item)`` in non-decreasing log time, where an
item is a :class:`SensorFrame` (log time = simulated delivery time; its
:class:`DetectionTruth` follows it immediately, same log time) or a :class:`TruthFrame`
(every object in flight each whole second of the scenario, and at launch and impact).

Work runs in blocks of looks: every satellite's look times of a block are propagated at
once (SGP4), every missile is sampled at all of them at once (dense ODE output) and the
geometry is vectorised over (object, satellite, look); only the per-frame random draws
and the frame assembly run per frame. Delivered frames wait in a heap until no later
block can deliver anything earlier, so memory stays flat whatever the duration.

Randomness is keyed: measurement draws by (seed, sensor, look index), delivery draws
(latency, drop) by (seed, sensor) on their own stream, per-object factors by
(seed, object); so changing latency or drops leaves every frame's noise unchanged.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracklayer.fusion.constants import R_EARTH_MEAN
from tracklayer.fusion.domain import (
    NS_PER_S,
    DetectionTruth,
    FlightPhase,
    SensorFrame,
    TruthFrame,
    TruthState,
)
from tracklayer.fusion.geodesy import geodetic_to_ecef, teme_to_ecef_matrix

from .constellation import Constellation, parse_tle, walker_delta
from .glide import make_glide_flight
from .ir_sensor import (
    GLIDE_INTENSITY,
    TAG_DELIVERY,
    TAG_FRAME,
    TAG_HOTSPOTS,
    TAG_OBJECT,
    TAG_PHASE,
    SensorParams,
    cone_basis,
    cone_directions,
    keyed_rng,
    merge_by_resolution,
    perturb,
    regard_half_angle,
    stable_hash,
    visible,
)
from .missile_profiles import GLIDERS, MissileError, booster_of
from .missiles import Flight, make_flight
from .pointing_bias import PointingBias
from .scenario import Scenario, ScenarioError

BLOCK_LOOKS = 32  # looks per satellite processed together
HOTSPOT_CAP_M = 1_500e3  # m, hot spots lie within this distance of a launch site or target
OBJECT_BRIGHTNESS_SIGMA = 0.3  # log-normal spread of per-object brightness
SCINTILLATION_SIGMA = 0.1  # log-normal spread per detection
# by FlightPhase value; boost from the profile
_PHASE_BRIGHTNESS = np.array([0.0, np.nan, 1.0, 5.0, GLIDE_INTENSITY])

Item = SensorFrame | DetectionTruth | TruthFrame
Progress = Callable[[float, float], None]


@dataclass(slots=True)
class World:
    """Everything fixed for one run (seed applied)."""

    scenario: Scenario
    seed: int
    duration_s: float
    params: SensorParams
    constellation: Constellation
    flights: list[Flight]
    offsets_s: np.ndarray  # (S,) look phase within the period
    sensor_hash: list[int]
    bias: PointingBias  # per-sensor rotation of the lines of sight
    obj_brightness: np.ndarray  # (J,) brightness of the profile while boosting
    obj_factor: np.ndarray  # (J,) per-object brightness factor (log-normal)
    pd_table: np.ndarray  # (5,) Pd by FlightPhase value
    hotspots_ecef: np.ndarray  # (H, 3) m
    hotspot_brightness: np.ndarray  # (H,)
    outages: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # abs s


def build_world(scenario: Scenario, seed: int | None = None, duration_s: float | None = None):
    """Constellation, solved missile flights, hot spots and per-sensor constants.
    A flight that cannot be solved raises ScenarioError naming its launch."""
    seed = scenario.seed if seed is None else int(seed)
    duration = scenario.duration_s if duration_s is None else float(duration_s)
    if not duration > 0.0:
        raise ValueError(f"duration_s: must be > 0, got {duration}")
    epoch = scenario.epoch_s
    p = SensorParams.from_spec(scenario.sensor)
    c = scenario.constellation
    if c.kind == "tle":
        const = parse_tle(c.tle_text, c.tle_file)
    else:
        const = walker_delta(epoch, c.altitude_km * 1e3, math.radians(c.inclination_deg),
                             c.planes, c.satellites_per_plane, c.phasing)  # fmt: skip
    hashes = [stable_hash(s) for s in const.ids]
    offsets = np.array(
        [keyed_rng(seed, TAG_PHASE, h).random() * p.period_s if p.random_phase else 0.0
         for h in hashes]
    )  # fmt: skip
    bias = _pointing_bias(scenario, seed, hashes, duration)
    flights, bright, factor = [], [], []
    for n, la in enumerate(scenario.launches):
        site, target = (la.site_lat_deg, la.site_lon_deg), (la.target_lat_deg, la.target_lon_deg)
        for i, oid in enumerate(la.object_ids()):
            t0 = epoch + la.time_s + i * la.spacing_s
            try:
                if la.missile in GLIDERS:
                    turns = [(t.at_s, t.bank_deg, t.duration_s) for t in la.turns]
                    flights.append(make_glide_flight(oid, la.missile, site, target, t0, turns))
                else:
                    flights.append(make_flight(oid, la.missile, site, target, t0))
            except MissileError as exc:
                key = f"launch[{n}].{getattr(exc, 'key', 'target')}"
                raise ScenarioError(scenario.source, key, str(exc)) from None
            f = float(np.exp(keyed_rng(seed, TAG_OBJECT, stable_hash(oid)).normal(
                0.0, OBJECT_BRIGHTNESS_SIGMA)))  # fmt: skip
            factor.append(f)
            bright.append(booster_of(la.missile).brightness)
    hot, hot_b = _hotspots(scenario, seed, p.hotspot_count)
    index = {sid: k for k, sid in enumerate(const.ids)}
    outages: dict[int, list[tuple[float, float]]] = {}
    for o in scenario.outages:
        outages.setdefault(index[o.sensor_id], []).append(
            (epoch + o.start_s, epoch + o.start_s + o.duration_s)
        )
    return World(scenario, seed, duration, p, const, flights, offsets, hashes, bias,
                 np.array(bright), np.array(factor), p.pd_by_phase(), hot, hot_b,
                 outages)  # fmt: skip


def _pointing_bias(
    scenario: Scenario, seed: int, hashes: list[int], duration_s: float
) -> PointingBias:
    s = scenario.sensor
    return PointingBias(seed, hashes, s.bias_sigma_urad * 1e-6,
                        s.bias_drift_urad_per_hour * 1e-6, duration_s)  # fmt: skip


def _hotspots(scenario: Scenario, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` Earth-fixed hot spots uniform over caps of radius ``HOTSPOT_CAP_M`` centred on
    the launch sites and aim points in turn (fires and glint in the theatre)."""
    if n == 0:
        return np.zeros((0, 3)), np.zeros(0)
    centres = []
    for la in scenario.launches:
        centres += [(la.site_lat_deg, la.site_lon_deg), (la.target_lat_deg, la.target_lon_deg)]
    rng = keyed_rng(seed, TAG_HOTSPOTS)
    pts = np.empty((n, 3))
    cap = HOTSPOT_CAP_M / R_EARTH_MEAN
    for i in range(n):
        lat, lon = np.radians(centres[i % len(centres)])
        d = math.acos(1.0 - rng.random() * (1.0 - math.cos(cap)))  # uniform area in the cap
        az = 2 * math.pi * rng.random()
        lat2 = math.asin(math.sin(lat) * math.cos(d) + math.cos(lat) * math.sin(d) * math.cos(az))
        lon2 = lon + math.atan2(math.sin(az) * math.sin(d) * math.cos(lat),
                                math.cos(d) - math.sin(lat) * math.sin(lat2))  # fmt: skip
        pts[i] = geodetic_to_ecef(math.degrees(lat2), math.degrees(lon2), 0.0)
    return pts, rng.lognormal(math.log(3.0), 0.5, n)


# --------------------------------------------------------------------------- frames


def _frame(
    w: World, k: int, n: int, t_s: float, r_sat: np.ndarray, v_sat: np.ndarray,
    obj_pos: np.ndarray, obj_ok: np.ndarray, obj_phase: np.ndarray, hot_pos: np.ndarray,
    regard: np.ndarray, regard_half: float,
) -> tuple[SensorFrame, DetectionTruth]:  # fmt: skip
    """One look of satellite ``k`` (look index ``n``) at ``t_s``. ``obj_pos`` (J, 3) TEME,
    ``obj_ok`` (J,) in flight and in view, ``obj_phase`` (J,), ``hot_pos`` (H, 3) TEME,
    ``regard`` (3, 3) nadir frame and ``regard_half`` (rad) of the clutter field of regard."""
    p = w.params
    rng = keyed_rng(w.seed, TAG_FRAME, w.sensor_hash[k], n)
    n_obj, n_hot = obj_pos.shape[0], hot_pos.shape[0]
    # fixed draw layout (independent of visibility): objects, hot spots, then clutter
    u_obj = rng.random(n_obj)
    z_obj = rng.standard_normal((n_obj, 3))
    u_hot = rng.random(n_hot)
    z_hot = rng.standard_normal((n_hot, 2))
    n_clutter = int(rng.poisson(p.clutter_per_frame))
    uv = rng.random((n_clutter, 2))
    i_clutter = rng.exponential(1.0, n_clutter)

    true_l, off_l, int_l, ids_l = [], [], [], []  # true LOS and noise of real sources
    idx = np.nonzero(obj_ok)[0]
    if idx.size:
        d = obj_pos[idx] - r_sat
        rng_m = np.linalg.norm(d, axis=1)
        u = d / rng_m[:, None]
        labels = merge_by_resolution(u, rng_m, p.resolution_rad)
        heads = labels == np.arange(idx.size)
        phase = obj_phase[idx]
        det = heads & (u_obj[idx] < w.pd_table[phase])
        if det.any():
            sel = idx[det]
            bright = np.where(phase == FlightPhase.BOOST, w.obj_brightness[idx],
                              _PHASE_BRIGHTNESS[phase])  # fmt: skip
            inten = bright * w.obj_factor[idx] * (1e6 / rng_m) ** 2
            merged = np.bincount(labels, weights=inten, minlength=idx.size)
            true_l.append(u[det])
            off_l.append(z_obj[sel, :2])
            int_l.append(merged[det] * np.exp(SCINTILLATION_SIGMA * z_obj[sel, 2]))
            ids_l += [w.flights[j].object_id for j in sel]
    if n_hot:
        vis = visible(r_sat, hot_pos, p.grazing_m, p.max_range_m) & (u_hot < p.pd_boost)
        if vis.any():
            d = hot_pos[vis] - r_sat
            rng_m = np.linalg.norm(d, axis=1)
            true_l.append(d / rng_m[:, None])
            off_l.append(z_hot[vis])
            int_l.append(w.hotspot_brightness[vis] * (1e6 / rng_m) ** 2)
            ids_l += [""] * int(vis.sum())
    los_l = [perturb(np.concatenate(true_l), p.sigma_rad * np.concatenate(off_l))] if true_l else []
    if n_clutter:
        # uniform directions: measurement noise would not change their distribution
        los_l.append(cone_directions(regard, regard_half, uv))
        int_l.append(i_clutter)
        ids_l += [""] * n_clutter
    if los_l:
        los = np.concatenate(los_l)
        inten = np.concatenate(int_l)
        order = rng.permutation(los.shape[0])  # no order leaks which is which
        los, inten = los[order], inten[order]
        ids = tuple(ids_l[i] for i in order)
        rot = w.bias.rotation(k, t_s - w.scenario.epoch_s)
        if rot is not None:
            los = los @ rot.T
    else:
        los, inten, ids = np.zeros((0, 3)), np.zeros(0), ()
    sid = w.constellation.ids[k]
    t_ns = int(round(t_s * NS_PER_S))
    frame = SensorFrame(sid, n, t_ns, r_sat, v_sat, los, np.full(los.shape[0], p.sigma_rad), inten)
    return frame, DetectionTruth(sid, n, ids)


def _look_counts(w: World) -> np.ndarray:
    """Looks per satellite: n with offset + n * period < duration."""
    return np.ceil((w.duration_s - w.offsets_s) / w.params.period_s - 1e-9).astype(int)


def _truth_frames(w: World, entries: list[tuple[float, list[int]]]) -> list[TruthFrame]:
    """TruthFrames for ``(time s, object indices)`` entries; each object is sampled at all
    its times in one call."""
    per_obj: dict[int, list[int]] = {}
    for e, (_t, js) in enumerate(entries):
        for j in js:
            per_obj.setdefault(j, []).append(e)
    states: dict[tuple[int, int], TruthState] = {}
    for j, es in per_obj.items():
        f = w.flights[j]
        ts = np.array([entries[e][0] for e in es])
        r, v = f.state_teme(ts)
        phase = f.phase(ts)
        for m, e in enumerate(es):
            states[e, j] = TruthState(f.object_id, r[m], v[m], FlightPhase(int(phase[m])))
    return [
        TruthFrame(int(round(t * NS_PER_S)), [states[e, j] for j in js])
        for e, (t, js) in enumerate(entries)
    ]


def _truth_times(w: World, lo: float, hi: float) -> list[tuple[float, list[int]]]:
    """Truth frames with time in [lo, hi): each whole second of the scenario (the objects
    in flight, possibly none), and each object's launch and impact instants (one frame per
    instant: objects launched or impacting at the same moment share it)."""
    epoch, end = w.scenario.epoch_s, w.scenario.epoch_s + w.duration_s
    out: list[tuple[float, list[int]]] = []
    for s in range(math.ceil(lo - epoch), math.ceil(min(hi, end + 1e-9) - epoch)):
        t = epoch + s
        if t > end:
            break
        js = [j for j, f in enumerate(w.flights) if f.launch_s <= t <= f.impact_time_s]
        out.append((t, js))  # empty when nothing flies: truth is "no objects" then
    instants: dict[float, list[int]] = {}
    for j, f in enumerate(w.flights):
        for t in (f.launch_s, f.impact_time_s):
            if lo <= t < hi and t <= end and t != math.floor(t):
                instants.setdefault(t, []).append(j)
    out.extend(instants.items())
    return out


def simulate(
    scenario: Scenario,
    seed: int | None = None,
    duration_s: float | None = None,
    progress: Progress | None = None,
) -> Iterator[tuple[int, Item]]:
    """Stream the scenario as ``(log_time_ns, item)`` in non-decreasing log time (see module
    doc). ``seed`` / ``duration_s`` override the scenario's; ``progress(done_s, total_s)``
    is called once per block. The flights are solved before this returns (a scenario whose
    missiles cannot fly raises here, not mid-stream)."""
    w = build_world(scenario, seed, duration_s)
    return _run(w, progress)


def _run(w: World, progress: Progress | None) -> Iterator[tuple[int, Item]]:
    p, const = w.params, w.constellation
    n_sat, n_obj = len(const), len(w.flights)
    epoch = w.scenario.epoch_s
    counts = _look_counts(w)
    delivery = [keyed_rng(w.seed, TAG_DELIVERY, h) for h in w.sensor_hash]
    launch = np.array([f.launch_s for f in w.flights])
    impact = np.array([f.impact_time_s for f in w.flights])
    heap: list[tuple[int, int, str, int, Any]] = []
    n_max = int(counts.max()) if n_sat else 0
    for b in range(0, n_max, BLOCK_LOOKS):
        looks = np.arange(b, min(b + BLOCK_LOOKS, n_max))
        times = epoch + w.offsets_s[:, None] + looks[None, :] * p.period_s  # (S, B)
        valid = looks[None, :] < counts[:, None]
        r_sat, v_sat = const.propagate_each(times)
        flat = times.ravel()
        pos = np.zeros((n_obj, flat.size, 3))
        ok = np.zeros((n_obj, flat.size), bool)
        phase = np.zeros((n_obj, flat.size), np.int64)
        t_lo, t_hi = float(flat.min()), float(flat.max())
        for j, f in enumerate(w.flights):
            if launch[j] > t_hi or impact[j] < t_lo:
                continue
            inflight = (flat >= launch[j]) & (flat <= impact[j])
            r, _v = f.state_teme(flat[inflight])
            pos[j, inflight] = r
            ok[j, inflight] = True
            phase[j, inflight] = f.phase(flat[inflight])
        ok &= visible(r_sat.reshape(1, -1, 3), pos, p.grazing_m, p.max_range_m)
        if w.hotspots_ecef.shape[0]:
            rot = np.swapaxes(teme_to_ecef_matrix(flat), -1, -2)  # ECEF -> TEME per time
            hot = np.einsum("tij,hj->thi", rot, w.hotspots_ecef)
        else:
            hot = np.zeros((flat.size, 0, 3))
        rad = np.linalg.norm(r_sat, axis=-1).ravel()
        regard = cone_basis(-r_sat.reshape(-1, 3) / rad[:, None])  # (S*B, 3, 3)
        regard_half = regard_half_angle(rad)
        shape = times.shape
        for k in range(n_sat):
            for i in range(shape[1]):
                if not valid[k, i]:
                    continue
                q = k * shape[1] + i
                n = int(looks[i])
                frame, dtruth = _frame(w, k, n, float(times[k, i]), r_sat[k, i], v_sat[k, i],
                                       pos[:, q], ok[:, q], phase[:, q], hot[q], regard[q],
                                       float(regard_half[q]))  # fmt: skip
                # delivery draws: always two per look, in look order, on their own stream
                u_drop, u_lat = delivery[k].random(2)
                if u_drop < p.drop_probability:
                    continue
                lat = 0.0
                if p.latency_mean_s > 0:
                    lat = min(-p.latency_mean_s * math.log1p(-u_lat), p.latency_max_s)
                t_meas = float(times[k, i])
                t_del = t_meas + lat
                if any(a <= t_meas < e or a <= t_del < e for a, e in w.outages.get(k, ())):
                    continue
                log_ns = max(frame.time_ns, int(round(t_del * NS_PER_S)))
                heapq.heappush(heap, (log_ns, 1, frame.sensor_id, n, (frame, dtruth)))
        next_t = float(times[:, -1].min()) + p.period_s if b + BLOCK_LOOKS < n_max else math.inf
        block_lo = epoch if b == 0 else float(times.min())
        for tf in _truth_frames(w, _truth_times(w, block_lo, next_t)):
            heapq.heappush(heap, (tf.time_ns, 0, "", 0, tf))
        horizon = math.inf if math.isinf(next_t) else int(math.floor(next_t * NS_PER_S))
        yield from _deliver(heap, horizon)
        if progress is not None:
            progress(min(w.duration_s, float(times.max()) - epoch), w.duration_s)
    yield from _deliver(heap, math.inf)  # nothing left can be earlier


def _deliver(
    heap: list[tuple[int, int, str, int, Any]], horizon: float
) -> Iterator[tuple[int, Item]]:
    """Pop every heap entry logged before ``horizon`` (ns): a frame is followed by its
    detection truth, a truth frame stands alone."""
    while heap and heap[0][0] < horizon:
        log_ns, kind, _sid, _n, item = heapq.heappop(heap)
        if kind == 1:
            yield log_ns, item[0]
            yield log_ns, item[1]
        else:
            yield log_ns, item


@dataclass(slots=True)
class SimulationResult:
    """A whole run in memory (tests): frames in delivery order, their truths, truth frames."""

    frames: list[SensorFrame]
    detection_truth: list[DetectionTruth]
    truth: list[TruthFrame]
    meta: dict[str, Any]
    delivery_ns: list[int] = field(default_factory=list)  # log time of each frame


def simulate_to_lists(
    scenario: Scenario, seed: int | None = None, duration_s: float | None = None
) -> SimulationResult:
    """Run :func:`simulate` and collect everything (for tests and small runs)."""
    frames, dts, truth, deliv = [], [], [], []
    for log_ns, item in simulate(scenario, seed, duration_s):
        if isinstance(item, SensorFrame):
            frames.append(item)
            deliv.append(log_ns)
        elif isinstance(item, DetectionTruth):
            dts.append(item)
        else:
            truth.append(item)
    meta = run_metadata(scenario, seed, duration_s)
    return SimulationResult(frames, dts, truth, meta, deliv)


def run_metadata(
    scenario: Scenario, seed: int | None = None, duration_s: float | None = None
) -> dict[str, Any]:
    """Facts about a run for recording metadata and summaries; ``sensor_bias`` (the true
    biases, :meth:`PointingBias.truth_table`) only when the scenario has a bias."""
    seed = scenario.seed if seed is None else int(seed)
    duration = scenario.duration_s if duration_s is None else float(duration_s)
    meta = {
        "scenario": scenario.name,
        "scenario_file": scenario.source,
        "seed": seed,
        "duration_s": duration,
        "sensor_ids": scenario.sensor_ids(),
        "object_ids": [oid for la in scenario.launches for oid in la.object_ids()],
    }
    ids = scenario.sensor_ids()
    bias = _pointing_bias(scenario, seed, [stable_hash(s) for s in ids], duration)
    if bias.active:
        meta["sensor_bias"] = bias.truth_table(ids)
    return meta
