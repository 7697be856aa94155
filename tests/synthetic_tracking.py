"""Synthetic truth, detections and track reports with known errors, for metrics tests.

Independent of the simulator and the tracker: a "missile" flies a smooth path given in
geodetic coordinates (constant latitude, longitude growing linearly, altitude a
parabola from 0 to ``apogee_m`` and back to 0), so its launch and impact points and its
descent through 100 km are known in closed form. Truth and reports are sampled at whole
seconds, so truth interpolation at a report time returns the truth sample exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tracklayer.fusion.domain import (
    NS_PER_S,
    DetectionTruth,
    FlightPhase,
    GroundEllipse,
    SensorFrame,
    TrackReport,
    TrackStatus,
    TruthFrame,
    TruthState,
)
from tracklayer.fusion.geodesy import ecef_to_teme, geodetic_to_ecef, teme_to_geodetic

EPOCH_NS = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class SyntheticMissile:
    object_id: str
    lat_deg: float = 30.0
    lon_deg: float = 10.0
    launch_s: int = 0  # seconds after EPOCH
    flight_s: int = 1200
    apogee_m: float = 1_000_000.0
    lon_rate_deg_s: float = 0.01
    boost_s: int = 60

    @property
    def impact_latlon(self) -> tuple[float, float]:
        return self.lat_deg, self.lon_deg + self.lon_rate_deg_s * self.flight_s

    @property
    def reentry_s(self) -> float:
        """Flight time (s after launch) of the descent through 100 km: 4 H s (1 - s) = 1e5.

        The apogee (half the flight) when it is below 100 km (DESIGN §3).
        """
        x = 1e5 / (4.0 * self.apogee_m)
        if 4.0 * x >= 1.0:
            return self.flight_s / 2.0
        return self.flight_s * (1.0 + math.sqrt(1.0 - 4.0 * x)) / 2.0

    def _ecef(self, tau: np.ndarray) -> np.ndarray:
        s = tau / self.flight_s
        alt = 4.0 * self.apogee_m * s * (1.0 - s)
        lon = self.lon_deg + self.lon_rate_deg_s * tau
        return geodetic_to_ecef(np.full_like(tau, self.lat_deg), lon, alt)

    def states(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TEME position (m), velocity (m/s) and phase at flight times ``tau`` (s)."""
        tau = np.asarray(tau, float)
        d = 1e-3
        r = self._ecef(tau)
        v = (self._ecef(tau + d) - self._ecef(tau - d)) / (2 * d)
        t_abs = EPOCH_NS / NS_PER_S + self.launch_s + tau
        rt, vt = ecef_to_teme(r, t_abs, v)
        phase = np.where(
            tau < self.boost_s,
            FlightPhase.BOOST,
            np.where(tau >= self.reentry_s, FlightPhase.REENTRY, FlightPhase.MIDCOURSE),
        )
        return rt, vt, phase

    def time_ns(self, tau: int) -> int:
        return EPOCH_NS + (self.launch_s + int(tau)) * NS_PER_S


def truth_frames(missiles: list[SyntheticMissile]) -> list[TruthFrame]:
    """Truth at every whole second of every flight (launch to impact, both included)."""
    by_time: dict[int, list[TruthState]] = {}
    for m in missiles:
        tau = np.arange(m.flight_s + 1, dtype=float)
        r, v, ph = m.states(tau)
        for k in range(tau.size):
            by_time.setdefault(m.time_ns(k), []).append(
                TruthState(m.object_id, r[k], v[k], FlightPhase(int(ph[k])))
            )
    return [TruthFrame(t, objs) for t, objs in sorted(by_time.items())]


def report(
    m: SyntheticMissile,
    track_id: str,
    revision: int,
    tau: int,
    *,
    dpos: np.ndarray | None = None,
    dvel: np.ndarray | None = None,
    cov: np.ndarray | None = None,
    status: TrackStatus = TrackStatus.CONFIRMED,
    impact: GroundEllipse | None = None,
    launch: GroundEllipse | None = None,
    sensors: tuple[str, ...] = ("sat-1-1", "sat-2-1"),
    update_count: int | None = None,
) -> TrackReport:
    """A report of missile ``m`` at flight time ``tau`` with errors ``dpos``/``dvel``."""
    r, v, ph = m.states(np.array([float(tau)]))
    pos = r[0] + (np.zeros(3) if dpos is None else dpos)
    vel = v[0] + (np.zeros(3) if dvel is None else dvel)
    t_ns = m.time_ns(tau)
    lat, lon, alt = teme_to_geodetic(pos, t_ns / NS_PER_S)
    return TrackReport(
        track_id=track_id,
        revision=revision,
        status=status,
        time_ns=t_ns,
        position=pos,
        velocity=vel,
        covariance=np.diag([100.0**2] * 3 + [1.0] * 3) if cov is None else cov,
        latitude_deg=float(lat),
        longitude_deg=float(lon),
        altitude_m=float(alt),
        phase=FlightPhase(int(ph[0])),
        impact=impact,
        launch=launch,
        sensor_ids=sensors,
        update_count=revision if update_count is None else update_count,
    )


def track_reports(
    m: SyntheticMissile,
    track_id: str,
    taus: range,
    *,
    dpos: np.ndarray | None = None,
    dvel: np.ndarray | None = None,
    first_revision: int = 1,
    end_deleted: bool = False,
) -> list[TrackReport]:
    """Confirmed reports at every ``tau`` (constant errors); optionally a final DELETED one."""
    out = [
        report(m, track_id, first_revision + i, tau, dpos=dpos, dvel=dvel)
        for i, tau in enumerate(taus)
    ]
    if end_deleted:
        tau = taus[-1] + taus.step
        out.append(
            report(
                m,
                track_id,
                first_revision + len(out),
                tau,
                dpos=dpos,
                dvel=dvel,
                status=TrackStatus.DELETED,
            )
        )
    return out


def stereo_detections(
    m: SyntheticMissile,
    taus: range,
    angle_deg: float,
    sensors: tuple[str, str] = ("sat-1-1", "sat-2-1"),
    range_m: float = 2_000_000.0,
) -> list[tuple[SensorFrame, DetectionTruth]]:
    """Two satellites seeing ``m`` at each ``tau`` along lines of sight ``angle_deg`` apart."""
    r, _, _ = m.states(np.array([float(t) for t in taus]))
    half = math.radians(angle_deg) / 2.0
    out = []
    for k, tau in enumerate(taus):
        up = r[k] / np.linalg.norm(r[k])
        side = np.cross(up, [0.0, 0.0, 1.0])
        side /= np.linalg.norm(side)
        for j, sid in enumerate(sensors):
            sgn = 1.0 if j == 0 else -1.0
            u = math.cos(half) * up + sgn * math.sin(half) * side  # object -> sensor
            pos = r[k] + range_m * u
            frame = SensorFrame(
                sensor_id=sid,
                sequence=int(tau),
                time_ns=m.time_ns(tau),
                position=pos,
                velocity=np.zeros(3),
                los=[-u],
                sigma=[2e-5],
                intensity=[1.0],
            )
            out.append((frame, DetectionTruth(sid, int(tau), (m.object_id,))))
    return out


def write_recording(
    path: object,
    missiles: list[SyntheticMissile],
    reports: list[TrackReport],
    detections: list[tuple[SensorFrame, DetectionTruth]] = (),
    with_truth: bool = True,
    metadata: dict[str, str] | None = None,
) -> None:
    """An MCAP recording (services.recording) of truth, frames + detection truth and reports,
    each topic written in time order as a simulation followed by ``track`` would."""
    from tracklayer.services.wire.recording import RecordingWriter

    items: list[tuple[int, int, object]] = []
    if with_truth:
        items += [(tf.time_ns, 0, tf) for tf in truth_frames(missiles)]
        for fr, dt in detections:
            items.append((fr.time_ns, 1, (fr, dt)))
    items += [(r.time_ns, 2, r) for r in reports]
    items.sort(key=lambda x: (x[0], x[1]))
    with RecordingWriter(path, metadata=metadata or {"scenario": "synthetic"}) as w:
        for t, kind, obj in items:
            if kind == 0:
                w.write_truth(obj, t)
            elif kind == 1:
                w.write_frame(obj[0], t)
                w.write_detection_truth(obj[1], t)
            else:
                w.write_track(obj, t)


def noisy_reports(
    m: SyntheticMissile, track_id: str, taus: range, seed: int = 0
) -> list[TrackReport]:
    """Plausible-looking reports for plots: Gaussian errors consistent with their covariance
    (300 m in boost, 30 m after), impact predictions converging after burnout."""
    rng = np.random.default_rng(seed)
    out = []
    ilat, ilon = m.impact_latlon
    for i, tau in enumerate(taus):
        sp = 300.0 if tau < m.boost_s else 30.0
        sv = 30.0 if tau < m.boost_s else 0.3
        cov = np.diag([sp**2] * 3 + [sv**2] * 3)
        e = np.concatenate([rng.normal(size=3) * sp, rng.normal(size=3) * sv])
        imp = None
        if tau >= m.boost_s + 10:
            miss = 40_000.0 * math.exp(-(tau - m.boost_s) / 150.0) + 600.0
            ang = rng.uniform(0, 2 * math.pi)
            dn, de = miss * 0.5 * math.cos(ang), miss * 0.5 * math.sin(ang)
            imp = GroundEllipse(
                ilat + math.degrees(dn / 6.371e6),
                ilon + math.degrees(de / (6.371e6 * math.cos(math.radians(ilat)))),
                m.time_ns(m.flight_s),
                miss,
                miss * 0.4,
                75.0,
            )
        out.append(report(m, track_id, i + 1, tau, dpos=e[:3], dvel=e[3:], cov=cov, impact=imp))
    return out
