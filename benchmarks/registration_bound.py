"""How much of the biases' information the registration uses: its posterior against the
Cramér-Rao bound on the scene's true geometry (DESIGN §6, *The information in the data,
stop 24*; `fusion/evaluation/registration_bound.py`).

    python benchmarks/registration_bound.py biased --seed 11 --tracked OUT.mcap

Simulates the scene in process up to ``--at`` (its detections and their truth), builds the
bound for each nuisance model of ``--models`` and prints, over the sensors and principal
axes `evaluate` scores in OUT (``tracklayer track`` of the same scene and seed), the RMS of
the bound's sigma beside the estimator's own sigma and error (urad and % of the true RMS),
and the chance that an error drawn from the bound meets issue 12's 30 %. A model is
``SITE/MOVING`` window lengths in s (0: one unknown position per hot spot for the whole
run); boosting or re-entering missiles always use 6 s windows (position, velocity and
acceleration unknown), as the estimator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tracklayer.fusion.domain import DetectionTruth, FlightPhase, SensorFrame
from tracklayer.fusion.evaluation.registration import RegistrationScore, score_registration
from tracklayer.fusion.evaluation.registration_bound import BoundLooks, bias_bound
from tracklayer.fusion.geodesy import teme_to_ecef_matrix
from tracklayer.sensors.scenario import load_scenario
from tracklayer.sensors.simulation import World, build_world, simulate
from tracklayer.services.evaluation.registration import read_biases
from tracklayer.services.wire.recording import RecordingReader

HOT_MATCH_RAD = 300e-6  # a detection of no object within this of a hot spot is that spot's
BOOST_WINDOW_S = 6.0
SIGMAS = np.array([1e4] * 3 + [1e2] * 3 + [1e2] * 3)  # m, m/s, m/s^2: nuisance priors


def scene_looks(w: World, at_s: float) -> dict[str, np.ndarray]:
    """Every detection of a missile or a hot spot up to ``at_s``: sensor, time (s from the
    epoch), sensor position, kind (0 missile, 1 hot spot) and object / hot-spot index."""
    epoch = w.scenario.epoch_s
    ids = {s: k for k, s in enumerate(w.constellation.ids)}
    objs = {f.object_id: j for j, f in enumerate(w.flights)}
    rows: list[tuple[int, float, np.ndarray, int, int]] = []
    frames: dict[tuple[str, int], SensorFrame] = {}
    for _ns, item in simulate(w.scenario, w.seed, at_s + 10.0):
        if isinstance(item, SensorFrame):
            frames[(item.sensor_id, item.sequence)] = item
            continue
        if not isinstance(item, DetectionTruth):
            continue
        fr = frames.pop((item.sensor_id, item.sequence))
        t = fr.time_ns / 1e9
        if t - epoch > at_s:
            continue
        k = ids[fr.sensor_id]
        rows += [(k, t - epoch, fr.position, 0, objs[o]) for o in item.object_ids if o]
        blank = [i for i, o in enumerate(item.object_ids) if not o]
        if blank and w.hotspots_ecef.shape[0]:
            d = w.hotspots_ecef @ teme_to_ecef_matrix(t) - fr.position  # ECEF -> ECI
            c = (d / np.linalg.norm(d, axis=1, keepdims=True)) @ fr.los[blank].T
            h = np.argmax(c, axis=0)
            hit = c[h, np.arange(len(blank))] > np.cos(HOT_MATCH_RAD)
            rows += [(k, t - epoch, fr.position, 1, int(j)) for j in h[hit]]
    return {
        "sensor": np.array([r[0] for r in rows]),
        "t_s": np.array([r[1] for r in rows]),
        "sensor_pos": np.array([r[2] for r in rows]),
        "kind": np.array([r[3] for r in rows]),
        "index": np.array([r[4] for r in rows]),
    }


def bound_looks(w: World, raw: dict[str, np.ndarray], site_s: float, moving_s: float) -> BoundLooks:
    """The looks with their targets' true positions and nuisance groups: a hot spot's
    Earth-fixed position per ``site_s`` window (0: the whole run), a midcourse missile's
    position and velocity per ``moving_s`` window, a boosting or re-entering one's position,
    velocity and acceleration per 6 s window."""
    n = raw["t_s"].size
    epoch = w.scenario.epoch_s
    pos, phase = np.zeros((n, 3)), np.zeros(n, int)
    for j, f in enumerate(w.flights):
        m = (raw["kind"] == 0) & (raw["index"] == j)
        if m.any():
            pos[m] = f.state_teme(raw["t_s"][m] + epoch)[0]
            phase[m] = f.phase(raw["t_s"][m] + epoch)
    hot = raw["kind"] == 1
    to_eci = np.swapaxes(teme_to_ecef_matrix(raw["t_s"][hot] + epoch), -1, -2)
    pos[hot] = np.einsum("nij,nj->ni", to_eci, w.hotspots_ecef[raw["index"][hot]])
    mid = (raw["kind"] == 0) & (phase == FlightPhase.MIDCOURSE)
    whole = hot & (site_s <= 0)  # one position per hot spot for the whole run
    span = np.where(hot, max(site_s, 1.0), np.where(mid, moving_s, BOOST_WINDOW_S))
    bucket = np.where(whole, -1, np.floor(raw["t_s"] / span)).astype(int)
    kind = np.where(hot, 0, np.where(mid, 1, 2))
    keys = np.stack([kind, raw["index"], bucket], axis=1)
    uniq, group = np.unique(keys, axis=0, return_inverse=True)
    dt = raw["t_s"] - (bucket + 0.5) * span  # s from the window's middle (hot spots: unused)
    basis = np.zeros((n, 3, 9))
    eye = np.eye(3)
    basis[:, :, :3] = eye
    basis[hot, :, :3] = to_eci
    basis[~hot, :, 3:6] = eye * dt[~hot, None, None]
    basis[kind == 2, :, 6:] = eye * (dt[kind == 2] ** 2 / 2)[:, None, None]
    width = np.array([3, 6, 9])[uniq[:, 0]]
    sig = np.where(np.arange(9) < width[:, None], SIGMAS, np.nan)
    sigma = np.full(n, w.params.sigma_rad)
    return BoundLooks(raw["sensor"], raw["t_s"], raw["sensor_pos"], pos, sigma, group.ravel(),
                      basis, sig)  # fmt: skip


def scored_axes(
    sc: RegistrationScore, bounds: dict[str, np.ndarray], ids: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Along the principal axes `evaluate` scores (each sensor's reported covariance, sigma
    <= 5 urad): the estimator's own variances (urad^2), its errors (urad) and each bound's
    variances (urad^2; ``bounds`` (3 S, 3 S) rad^2 over the sensors ``ids``)."""
    own, err, along = [], [], {name: [] for name in bounds}
    for s in sc.sensors:
        lam, vec = np.linalg.eigh(s.covariance_urad2)
        m = np.sqrt(np.maximum(lam, 0.0)) <= 5.0
        own += list(lam[m])
        err += list((vec.T @ s.error_urad)[m])
        k = 3 * ids.index(s.sensor_id)
        for name, cov in bounds.items():
            c = cov[k : k + 3, k : k + 3] / 1e-12
            along[name] += list(np.einsum("ij,jk,ki->i", vec.T, c, vec)[m])
    return np.array(own), np.array(err), {name: np.array(a) for name, a in along.items()}


def compare(tracked: Path, at_s: float, bounds: dict[str, np.ndarray], ids: list[str]) -> None:
    """Print the estimator's figures and each bound's on the axes `evaluate` scores."""
    ev = read_biases(tracked, RecordingReader(tracked).metadata)
    sc = score_registration(ev.truth, ev.estimates, ev.epoch_ns, at_s)
    own, err, along = scored_axes(sc, bounds, ids)
    tr = sc.rms_true_urad
    e, o = float(np.sqrt(np.mean(np.square(err)))), float(np.sqrt(np.mean(own)))
    print(f"{tracked.name}: {len(sc.sensors)} sensors, {len(own)} axes, true RMS {tr:.2f} urad")
    print(f"  estimator      error {e:.2f} urad ({100 * e / tr:.1f} %), "
          f"own sigma {o:.2f} ({100 * o / tr:.1f} %)")  # fmt: skip
    z = np.random.default_rng(0).standard_normal((20000, len(own)))
    for name, a in along.items():
        chance = np.mean(np.sqrt((z**2 * a).mean(axis=1)) <= 0.3 * tr)
        b = float(np.sqrt(a.mean()))
        print(f"  bound {name:9s} {b:.2f} urad ({100 * b / tr:.1f} %), "
              f"P(error <= 30 %) {chance:.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--at", type=float, default=600.0, help="s from the epoch (default 600)")
    ap.add_argument("--models", default="60/20,0/20", help="SITE/MOVING window s, comma separated")
    ap.add_argument("--drift", type=float, default=None, help="urad/h (default: the scene's)")
    ap.add_argument("--prior", type=float, default=10.0, help="urad per axis (default 10)")
    ap.add_argument("--tracked", type=Path, default=None, help="OUT.mcap of the same scene")
    a = ap.parse_args(argv)
    w = build_world(load_scenario(a.scenario), a.seed)
    drift = w.scenario.sensor.bias_drift_urad_per_hour if a.drift is None else a.drift
    raw = scene_looks(w, a.at)
    print(f"{a.scenario} seed {w.seed}: {raw['t_s'].size} looks to {a.at:.0f} s "
          f"({int(np.sum(raw['kind'] == 1))} of hot spots), drift {drift} urad/h")  # fmt: skip
    S = len(w.constellation.ids)
    bounds = {}
    for model in a.models.split(","):
        site, moving = (float(x) for x in model.split("/"))
        lk = bound_looks(w, raw, site, moving)
        bounds[model] = bias_bound(lk, S, a.at, a.prior * 1e-6, drift * 1e-6)
    if a.tracked is not None:
        compare(a.tracked, a.at, bounds, list(w.constellation.ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
