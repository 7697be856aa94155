"""Benchmark: tracklayer against Stone Soup on the same recorded detections (issue 13, item 7).

One run simulates a scenario once (``tracklayer simulate``; default ``single-icbm`` at
its full duration, or ``--scenario raid --duration 120``) and tracks that one recording
twice:

1. ``tracklayer track`` as its own process: CPU s = user + system from ``os.wait4``
   (MCAP reading and writing included), frames and detections per CPU second; then
   ``tracklayer evaluate --no-plots`` for ``truth.position_rmse_m.midcourse``.
2. Stone Soup (the optional ``peers`` extra) in this process, timed with
   ``time.process_time`` from opening the MCAP to the last frame: frames read with
   tracklayer's ``RecordingReader`` (protobuf decoding included), put in time order
   (Stone Soup cannot predict backwards; tracklayer orders them with its watermark),
   then per frame: ``GNNWith2DAssignment`` over a ``DistanceHypothesiser``
   (``Mahalanobis``, missed distance ``GATE``) with ``ExtendedKalmanPredictor`` /
   ``ExtendedKalmanUpdater`` (Joseph-form covariance, forced symmetric: the default
   form loses positive definiteness against 20 urad lines of sight; see RESULTS.md)
   and a ``CovarianceBasedDeleter`` (position covariance trace).

Stone Soup's models. State [x, vx, y, vy, z, vz] in TEME (m, m/s), constant velocity
per axis (``ConstantVelocity``, ``--q`` m^2/s^3 the spectral density of the white
acceleration noise; gravity, about 7-9 m/s^2 in midcourse, is left to that noise).
Measurement: per detection a ``CartesianToElevationBearing`` whose
``translation_offset`` is the satellite's TEME position at the frame time and whose
``rotation_offset`` (roll 0, pitch = elevation and yaw = azimuth of the detection's
line of sight in the TEME axes) turns that line of sight onto the model's x axis: the
measurement is then elevation 0, bearing 0, with the frame's tangent-plane sigma (rad)
as the sigma of both angles, and every predicted line of sight near it stays far from
the elevation +-90 deg where bearing is singular (lines of sight in these recordings
reach 99 deg from nadir, so one fixed per-satellite frame would meet that singularity).

Favours Stone Soup needs and cannot do itself: it has no angle-only initiator and no
gravity model. Its tracks are seeded from truth (the recording's ``/truth`` topic,
read outside the timed part): each object at the first truth sample at or after its
burnout + ``SEED_AFTER_BURNOUT_S``, with the state drawn from N(truth, P0), P0 =
diag(``SEED_SIGMA_M``^2 position, ``SEED_SIGMA_MPS``^2 velocity) (numpy seed 0). A track
deleted while its object still has more than ``RESTART_MIN_LEFT_S`` of truth ahead is
seeded again from truth the same way at the next truth sample: a track restart, counted.

Midcourse RMSE of Stone Soup is computed by tracklayer's own evaluation
(``tracklayer.fusion.evaluation.MetricsAccumulator``, the code ``tracklayer evaluate``
runs): one CONFIRMED report per Stone Soup update (TEME position, velocity, 6x6
covariance) and the truth frames; so both trackers are scored on the same 1 s grid,
with the same GOSPA assignment (c = 5 km), the same 2 s report age and the same
midcourse window (burnout + 60 s until descent through 100 km).

Prints both sides, the ratios and the issue's targets; appends a section to
benchmarks/RESULTS.md unless ``--no-write``. Needs ``pip install -e '.[peers]'``.

    .venv/bin/python benchmarks/bench_peer.py [--scenario single-icbm] [--duration S]
        [--q 100] [--keep DIR] [--no-write] [--note TEXT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import append_results, machine, work_dir
from peer_window import parse_window, tracklayer_window, window_frames

from tracklayer.fusion.domain import NS_PER_S, TrackReport, TrackStatus
from tracklayer.fusion.evaluation import MetricsAccumulator
from tracklayer.fusion.geodesy import teme_to_geodetic
from tracklayer.services.wire.recording import RecordingReader

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "tracklayer")
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

SEED_AFTER_BURNOUT_S = 30.0  # s: Stone Soup's tracks start from truth this long after burnout
SEED_SIGMA_M, SEED_SIGMA_MPS = 500.0, 50.0  # 1-sigma per axis of the seed (and its draw)
RESTART_MIN_LEFT_S = 10.0  # s of truth left for a deleted track to be seeded again
GATE = 5.0  # Mahalanobis distance of a missed detection (2-D: chi-square 25, p ~ 4e-6)
DELETE_POS_TRACE_M2 = 3.0 * 2000.0**2  # position covariance trace above which a track goes
Q_DEFAULT = 100.0  # m^2/s^3
T_RATIO = 100.0  # issue 13: at least 100x Stone Soup's frames and detections per second
TL_LABEL = "tracklayer `track` (process, MCAP read + write)"
HAND = {"det_per_s": 296.0, "rmse_m": 626.0, "restarts": 15}  # issue 13's hand measurement

T0 = time.monotonic()


def say(msg: str) -> None:
    """One progress line with the elapsed wall time of the whole benchmark."""
    el = time.monotonic() - T0
    print(f"[{int(el // 60):3d}:{el % 60:04.1f}] {msg}", flush=True)


def require_stonesoup() -> None:
    """Exit 2 with one line when the ``peers`` extra is not installed."""
    try:
        import stonesoup  # noqa: F401
    except ImportError:
        print("bench_peer: Stone Soup is not installed: pip install -e '.[peers]'", file=sys.stderr)
        raise SystemExit(2) from None


# ---------------------------------------------------------------- tracklayer (processes)


def run_cli(argv: list[str], log: Path) -> dict:
    """Run ``tracklayer ARGV`` as its own process; its CPU s and output."""
    with open(log, "w") as fh:
        p = subprocess.Popen([CLI, *argv], stdout=fh, stderr=subprocess.STDOUT, env=ENV)
        _, status, ru = os.wait4(p.pid, 0)
    out = log.read_text(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        print(out[-3000:], file=sys.stderr)
        raise SystemExit(f"tracklayer {' '.join(argv)} failed (log {log})")
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "out": out}


def tracklayer_side(rec: Path, work: Path) -> dict:
    """``tracklayer track`` and ``evaluate`` on ``rec``: CPU s, counts, midcourse RMSE."""
    say("tracklayer track ...")
    trk = run_cli(["track", str(rec), "--out", str(work / "track.mcap")], work / "track.log")
    say(f"tracklayer track: {trk['cpu_s']:.1f} CPU s; evaluate ...")
    run_cli(
        ["evaluate", str(work / "track.mcap"), "--report", str(work / "report"), "--no-plots"],
        work / "evaluate.log",
    )
    t = json.loads((work / "report" / "metrics.json").read_text()).get("truth") or {}
    return {
        "cpu_s": trk["cpu_s"],
        "rmse_m": (t.get("position_rmse_m") or {}).get("midcourse"),
        "rmse_samples": (t.get("rmse_samples") or {}).get("midcourse"),
    }


# ---------------------------------------------------------------- truth (the favour)


def read_truth(rec: Path) -> tuple[list, dict[str, dict]]:
    """The truth frames, and per object: times ns, TEME position/velocity, seed time ns."""
    frames = [tf for _, tf in RecordingReader(rec).truth()]
    rows: dict[str, list] = {}
    for tf in frames:
        for o in tf.objects:
            rows.setdefault(o.object_id, []).append((tf.time_ns, o.position, o.velocity, o.phase))
    objects = {}
    for oid, r in rows.items():
        r.sort(key=lambda x: x[0])
        t = np.array([x[0] for x in r], dtype=np.int64)
        phase = np.array([int(x[3]) for x in r])
        nb = np.flatnonzero(phase != 1)  # FlightPhase.BOOST == 1
        burnout = int(t[nb[0]]) if nb.size else int(t[-1])
        objects[oid] = {
            "t": t,
            "pv": np.array([np.concatenate([x[1], x[2]]) for x in r]),
            "seed_ns": burnout + int(SEED_AFTER_BURNOUT_S * NS_PER_S),
        }
    return frames, objects


# ---------------------------------------------------------------- Stone Soup


class Peer:
    """Stone Soup's components and its tracks, fed one frame at a time."""

    def __init__(self, q: float, objects: dict[str, dict]) -> None:
        from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
        from stonesoup.deleter.error import CovarianceBasedDeleter
        from stonesoup.hypothesiser.distance import DistanceHypothesiser
        from stonesoup.measures import Mahalanobis
        from stonesoup.models.transition.linear import (
            CombinedLinearGaussianTransitionModel,
            ConstantVelocity,
        )
        from stonesoup.predictor.kalman import ExtendedKalmanPredictor
        from stonesoup.updater.kalman import ExtendedKalmanUpdater

        transition = CombinedLinearGaussianTransitionModel([ConstantVelocity(q)] * 3)
        self.predictor = ExtendedKalmanPredictor(transition)
        self.updater = ExtendedKalmanUpdater(
            measurement_model=None, force_symmetric_covariance=True, use_joseph_cov=True
        )
        hyp = DistanceHypothesiser(self.predictor, self.updater, Mahalanobis(), GATE)
        self.associator = GNNWith2DAssignment(hyp)
        self.deleter = CovarianceBasedDeleter(DELETE_POS_TRACE_M2, mapping=[0, 2, 4])
        self.objects = objects
        self.rng = np.random.default_rng(0)
        self.tracks: set = set()
        self.object_of: dict = {}  # track -> object id it was seeded from
        self.pending = sorted((o["seed_ns"], oid) for oid, o in objects.items())
        self.restarts = 0
        self.updates: list = []  # (time ns, track id, state vector, covariance)

    def _seed(self, oid: str, after_ns: int) -> None:
        """A new track from the object's first truth sample at or after ``after_ns``."""
        from stonesoup.types.state import GaussianState
        from stonesoup.types.track import Track

        o = self.objects[oid]
        i = int(np.searchsorted(o["t"], after_ns))
        if i >= o["t"].size:
            return
        p, v = o["pv"][i, :3], o["pv"][i, 3:]
        sd = np.array([SEED_SIGMA_M, SEED_SIGMA_MPS] * 3)
        truth = np.array([p[0], v[0], p[1], v[1], p[2], v[2]])
        x = truth + sd * self.rng.standard_normal(6)
        when = EPOCH + dt.timedelta(microseconds=int(o["t"][i]) // 1000)
        track = Track([GaussianState(x.reshape(6, 1), np.diag(sd**2), timestamp=when)])
        self.tracks.add(track)
        self.object_of[track] = oid

    def _seed_due(self, now_ns: int) -> None:
        while self.pending and self.pending[0][0] <= now_ns:
            seed_ns, oid = self.pending.pop(0)
            self._seed(oid, seed_ns)

    def _detections(self, frame, when) -> set:
        from stonesoup.models.measurement.nonlinear import CartesianToElevationBearing
        from stonesoup.types.angle import Bearing, Elevation
        from stonesoup.types.array import StateVector
        from stonesoup.types.detection import Detection

        out = set()
        offset = StateVector(frame.position.reshape(3, 1))
        for u, sigma in zip(frame.los, frame.sigma, strict=True):
            yaw, pitch = math.atan2(u[1], u[0]), math.asin(max(-1.0, min(1.0, u[2])))
            model = CartesianToElevationBearing(
                ndim_state=6,
                mapping=(0, 2, 4),
                noise_covar=np.diag([sigma**2, sigma**2]),
                translation_offset=offset,
                rotation_offset=StateVector([[0.0], [pitch], [yaw]]),
            )
            z = StateVector([[Elevation(0.0)], [Bearing(0.0)]])
            out.add(Detection(z, timestamp=when, measurement_model=model))
        return out

    def process(self, frame) -> None:
        """One frame: seed what is due, associate, update or coast, delete, restart."""
        self._seed_due(frame.time_ns)
        if not self.tracks:
            return
        when = EPOCH + dt.timedelta(microseconds=frame.time_ns // 1000)
        hyps = self.associator.associate(self.tracks, self._detections(frame, when), when)
        for track, h in hyps.items():
            if h:
                post = self.updater.update(h)
                track.append(post)
                self.updates.append((frame.time_ns, track.id, post.state_vector, post.covar))
            else:
                track.append(h.prediction)
        for track in self.deleter.delete_tracks(self.tracks):
            self.tracks.discard(track)
            oid = self.object_of.pop(track)
            t = self.objects[oid]["t"]
            if (t[-1] - frame.time_ns) / NS_PER_S > RESTART_MIN_LEFT_S:
                self.restarts += 1
                self._seed(oid, frame.time_ns)


def stonesoup_side(
    rec: Path, objects: dict[str, dict], q: float, window: tuple[int, int] | None = None
) -> tuple[Peer, dict]:
    """Stone Soup over the frames of ``rec`` in time order (those logged in the
    ``window`` (lo, hi] log-time ns if given); the peer and its CPU s."""
    c0 = time.process_time()
    if window is None:
        frames = sorted((f for _, f in RecordingReader(rec).frames()), key=lambda f: f.time_ns)
    else:
        frames = window_frames(rec, *window)
        for o in objects.values():  # seeded at the window's start at the earliest
            o["seed_ns"] = max(o["seed_ns"], frames[0].time_ns)
    c1 = time.process_time()
    peer = Peer(q, objects)
    say(f"Stone Soup: {len(frames):,} frames read and ordered in {c1 - c0:.1f} CPU s; track ...")
    step = max(1, len(frames) // 10)
    for k, frame in enumerate(frames):
        peer.process(frame)
        if (k + 1) % step == 0:
            say(f"Stone Soup: {k + 1:,} frames, {time.process_time() - c0:.1f} CPU s")
    c2 = time.process_time()
    n_det = sum(f.n_detections for f in frames)
    return peer, {"cpu_s": c2 - c0, "read_cpu_s": c1 - c0, "frames": len(frames), "dets": n_det}


def peer_reports(peer: Peer) -> list[TrackReport]:
    """One CONFIRMED report per Stone Soup update, in tracklayer's (position, velocity) order."""
    if not peer.updates:
        return []
    order = [0, 2, 4, 1, 3, 5]
    t_ns = np.array([u[0] for u in peer.updates], dtype=np.int64)
    x = np.array([np.asarray(u[2], float).ravel()[order] for u in peer.updates])
    lat, lon, alt = teme_to_geodetic(x[:, :3], t_ns / NS_PER_S)
    revision: dict[str, int] = {}
    out = []
    for k, (tn, tid, _, cov) in enumerate(peer.updates):
        revision[tid] = revision.get(tid, 0) + 1
        c = np.asarray(cov, float)[np.ix_(order, order)]
        out.append(
            TrackReport(
                track_id=f"stonesoup-{tid}",
                revision=revision[tid],
                status=TrackStatus.CONFIRMED,
                time_ns=int(tn),
                position=x[k, :3],
                velocity=x[k, 3:],
                covariance=c,
                latitude_deg=float(lat[k]),
                longitude_deg=float(lon[k]),
                altitude_m=float(alt[k]),
                update_count=revision[tid],
            )
        )
    return out


def midcourse_rmse(reports: list[TrackReport], truth_frames: list) -> tuple[float | None, int]:
    """Midcourse position RMSE (m) of ``reports`` and its samples, by tracklayer's
    evaluation code."""
    acc = MetricsAccumulator()
    acc.add_reports(reports)
    for tf in truth_frames:
        acc.add_truth(tf)
    t = acc.finish().truth or {}
    rmse = (t.get("position_rmse_m") or {}).get("midcourse")
    n = (t.get("rmse_samples") or {}).get("midcourse") or 0
    return (None if rmse is None or math.isnan(rmse) else rmse), int(n)


# ---------------------------------------------------------------- report


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(sim: dict, tl: dict, ss: dict) -> list[str]:
    """The figures of both trackers, the ratios and the issue's targets."""
    n_f, n_d = sim["frames"], sim["detections"]
    tl_f, tl_d = n_f / tl["cpu_s"], n_d / tl["cpu_s"]
    ss_f, ss_d = ss["frames"] / ss["cpu_s"], ss["dets"] / ss["cpu_s"]
    rf, rd = tl_f / ss_f, tl_d / ss_d
    lower = None if tl["rmse_m"] is None or ss["rmse_m"] is None else tl["rmse_m"] < ss["rmse_m"]
    verdict = {None: "n/a", True: "met", False: "NOT met"}
    return [
        "| tracker | CPU s | frames/CPU s | detections/CPU s | midcourse RMSE m "
        "| midcourse samples | track restarts |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {tl.get('label', TL_LABEL)} | {tl['cpu_s']:.1f} | {tl_f:,.0f} "
        f"| {tl_d:,.0f} | {fmt(tl['rmse_m'], '.1f')} | {fmt(tl['rmse_samples'], ',')} | - |",
        f"| Stone Soup {ss['version']} (MCAP read + order {ss['read_cpu_s']:.1f} CPU s) "
        f"| {ss['cpu_s']:.1f} | {ss_f:,.0f} | {ss_d:,.0f} | {fmt(ss['rmse_m'], '.1f')} "
        f"| {ss['rmse_samples']:,} | {ss['restarts']} |",
        f"| **ratio tracklayer / Stone Soup** | | **{rf:,.1f}x** | **{rd:,.1f}x** | | | |",
        f"| *target (issue 13)* | | *>= {T_RATIO:g}x: {verdict[rf >= T_RATIO]}* "
        f"| *>= {T_RATIO:g}x: {verdict[rd >= T_RATIO]}* | *lower: {verdict[lower]}* | | |",
        f"| *issue 13's hand measurement, Stone Soup 1.9.1 on single-icbm* | | "
        f"| *{HAND['det_per_s']:g}* | *{HAND['rmse_m']:g}* | | *{HAND['restarts']}* |",
    ]


def command(args) -> str:
    """The command line that gave the figures."""
    parts = ["benchmarks/bench_peer.py"]
    src = f"--recording {args.recording}" if args.recording else f"--scenario {args.scenario}"
    parts.append(src)
    parts += [f"--duration {args.duration:g}"] if args.duration and not args.recording else []
    parts += [f"--window {args.window[0]:g}:{args.window[1]:g}"] if args.window else []
    return " ".join([*parts, f"--q {args.q:g}"])


def section(args, sim: dict, tl: dict, ss: dict, load0, load1) -> str:
    what = Path(args.recording).name if args.recording else args.scenario
    dur = f"{args.duration:g} s" if args.duration else "full duration"
    if args.window:
        dur = f"window {args.window[0]:g}-{args.window[1]:g} s (benchmarks/peer_window.py)"
    lines = [
        f"\n### bench_peer: tracklayer vs Stone Soup, {what}, {dur} "
        f"— {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n",
        f"Machine: {machine()}; OPENBLAS_NUM_THREADS=1. Load average (1/5/15 min) at start "
        f"{load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f}, at end "
        f"{load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f}. Same recording for both: "
        f"{sim['frames']:,} frames, {sim['detections']:,} detections, {sim['data_s']:.0f} s of "
        f"data. `{command(args)}`.\n",
        f"Stone Soup: constant velocity per TEME axis (q = {args.q:g} m^2/s^3), per-detection "
        "`CartesianToElevationBearing` (satellite position as translation offset, the line of "
        "sight turned onto x), EKF predictor/updater (Joseph form), `GNNWith2DAssignment` over a "
        f"`DistanceHypothesiser` (Mahalanobis, missed distance {GATE:g}), "
        f"`CovarianceBasedDeleter` (position trace > {DELETE_POS_TRACE_M2:.3g} m^2). Favours: "
        f"tracks seeded from truth at burnout + {SEED_AFTER_BURNOUT_S:g} s, N(truth, "
        f"diag({SEED_SIGMA_M:g} m, {SEED_SIGMA_MPS:g} m/s)^2); a deleted track is seeded again "
        "from truth (a restart); frames given in time order. Its midcourse RMSE is scored by "
        "tracklayer's own evaluation code on one report per update.\n",
    ]
    if args.note:
        lines.append(f"{args.note}\n")
    return "\n".join(lines + table(sim, tl, ss)) + "\n"


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="single-icbm", help="built-in name or TOML file")
    ap.add_argument("--duration", type=float, metavar="S",
                    help="simulated seconds (default: the scenario's own)")  # fmt: skip
    ap.add_argument("--q", type=float, default=Q_DEFAULT, metavar="M2_S3",
                    help="Stone Soup's constant-velocity process noise (m^2/s^3)")  # fmt: skip
    ap.add_argument("--recording", metavar="FILE.mcap",
                    help="track this recording (with /truth) instead of simulating")  # fmt: skip
    ap.add_argument("--window", metavar="A:B",
                    help="compare over the frames logged A..B s after the first "
                    "(see benchmarks/peer_window.py); for raids")  # fmt: skip
    ap.add_argument("--keep", metavar="DIR", help="keep the recordings, logs and report in DIR")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--note", metavar="TEXT", help="a line to put in the RESULTS.md section")
    args = ap.parse_args()
    if args.duration is not None and args.duration <= 0:
        ap.error("--duration must be > 0")
    if args.recording and not Path(args.recording).is_file():
        ap.error(f"--recording: no such file: {args.recording}")
    if args.window:
        try:
            args.window = parse_window(args.window)
        except ValueError as exc:
            ap.error(str(exc))
    return args


def simulate(args: argparse.Namespace, rec: Path, work: Path) -> dict:
    if not args.recording:
        argv = ["simulate", args.scenario, "--out", str(rec)]
        if args.duration:
            argv += ["--duration", f"{args.duration:g}"]
        say(f"simulate {args.scenario} ...")
        run_cli(argv, work / "simulate.log")
    frames = detections = 0
    first = last = None
    for _, f in RecordingReader(rec).frames():
        frames, detections = frames + 1, detections + f.n_detections
        first = f.time_ns if first is None else min(first, f.time_ns)
        last = f.time_ns if last is None else max(last, f.time_ns)
    data_s = 0.0 if first is None else (last - first) / NS_PER_S
    say(f"simulate: {frames:,} frames, {detections:,} detections, {data_s:.0f} s")
    return {"frames": frames, "detections": detections, "data_s": data_s}


def run(args: argparse.Namespace, work: Path) -> tuple[dict, dict, dict]:
    from importlib.metadata import version

    rec = Path(args.recording) if args.recording else work / "sim.mcap"
    sim = simulate(args, rec, work)
    truth_frames, objects = read_truth(rec)
    if args.window:
        tl = tracklayer_window(rec, work, *args.window, say)
        tl["rmse_m"], tl["rmse_samples"] = midcourse_rmse(tl["reports"], truth_frames)
        tl["label"] = "tracklayer `track`'s code on the window (MCAP read + write)"
        sim.update(frames=tl["frames"], detections=tl["detections"])
        sim["data_s"] = (tl["data_hi_ns"] - tl["data_lo_ns"]) / NS_PER_S
        span = (tl["lo_ns"], tl["hi_ns"])
    else:
        tl, span = tracklayer_side(rec, work), None
    say(f"Stone Soup: {len(objects)} objects to seed from truth; read frames ...")
    peer, ss = stonesoup_side(rec, objects, args.q, span)
    ss["rmse_m"], ss["rmse_samples"] = midcourse_rmse(peer_reports(peer), truth_frames)
    ss.update(restarts=peer.restarts, version=version("stonesoup"))
    return sim, tl, ss


def main() -> int:
    require_stonesoup()
    args = parse_args()
    load0 = os.getloadavg()
    with work_dir(args.keep, "bench_peer-") as work:
        sim, tl, ss = run(args, work)
    text = section(args, sim, tl, ss, load0, os.getloadavg())
    print(text)
    if not args.no_write:
        say(f"appended to {append_results(text).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
