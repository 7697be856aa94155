"""Shard layouts by measured load and the ray screen of a shard's initiation (issue 14).

* ``cells.balanced_cuts`` against a brute-force search of every contiguous split of a
  regional load; ``ShardMap`` with cuts against the wedge definition and against
  distances to sampled edge meridians;
* ``ShardMap.rays_reach`` against dense sampling of each dropped ray: no point of it
  that could be a target (ellipsoid height in the initiation band, not behind the Earth,
  within range) comes within the width of the shard's wedges;
* the layout pinned by the front door: a restart with another layout, or none, refuses
  and names it; the workers' ``ShardSpec`` builds its regions on it;
* ``tracklayer layout`` on a tracks recording, against an independent count;
* proofs 4 and 2 on a layout (S = 2, cuts 0 and 90 E): both missiles cross a cut once
  with one id and S = 1's accuracy; through the broker with two workers the store holds
  exactly the in-process reports.
"""

from __future__ import annotations

import numpy as np
import pytest

from tracklayer.fusion.cells import ShardMap, balanced_cuts, check_cuts, parse_cuts
from tracklayer.fusion.constants import R_EARTH_EQ, R_EARTH_MEAN
from tracklayer.fusion.dynamics import ellipsoid_height
from tracklayer.fusion.initiation import earth_blocks

# A regional raid's launch longitudes (deg) and missiles per site: raid-proliferated's.
SITES = {60.0: 25, 60.4: 25, 85.0: 100, 100.0: 250, 101.2: 150, 110.0: 200, 118.0: 50,
         120.0: 100, 125.0: 100}  # fmt: skip


def _samples(rng: np.random.Generator) -> np.ndarray:
    lon = np.repeat(list(SITES), list(SITES.values())).astype(float)
    return rng.permutation(lon)


def _best_split_load(lon: np.ndarray, shards: int) -> float:
    """Brute force: the smallest largest-wedge load over every way to cut the distinct
    loaded longitudes into ``shards`` contiguous groups around the circle (``shards``
    borders: the first group starts at any site)."""
    import itertools

    sites = np.array(sorted(SITES))
    load = np.array([SITES[s] for s in sites])
    best = np.inf
    n = sites.size
    for start in range(n):
        order = np.roll(load, -start)
        for cut in itertools.combinations(range(1, n), shards - 1):
            parts = np.split(order, cut)
            best = min(best, max(p.sum() for p in parts))
    return float(best)


@pytest.mark.parametrize("shards", [2, 3, 4])
def test_balanced_cuts_reach_the_best_contiguous_split_and_fall_between_loaded_sites(shards):
    rng = np.random.default_rng(shards)
    lon = _samples(rng)
    cuts = balanced_cuts(lon, None, shards)
    assert cuts == balanced_cuts(rng.permutation(lon), None, shards)  # order-free
    m = ShardMap(shards, cuts)
    counts = np.bincount(m.shard_of(np.zeros(lon.size), lon), minlength=shards)
    assert counts.sum() == lon.size
    best = _best_split_load(lon, shards)
    assert counts.max() <= best * 1.1, (cuts, counts, best)
    if shards == 2:  # the raid: two borders split it 500 / 500 (85-101.2 E apart)
        assert counts.max() == best == 500
    # every cut lies in a gap between sites, half-way across it (no site on a border)
    sites = np.array(sorted(SITES))
    for c in cuts:
        d = np.abs((sites - c + 180.0) % 360.0 - 180.0)
        assert d.min() > 0.3, (c, d.min())


def test_a_map_with_cuts_owns_contiguous_wedges_and_its_distances_match_sampled_edges():
    cuts = (-87.45, 105.6, 150.0)
    m = ShardMap(3, cuts)
    rng = np.random.default_rng(7)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 4000)))
    lon = rng.uniform(-180, 180, 4000)
    want = np.where(
        (lon >= -87.45) & (lon < 105.6), 0, np.where((lon >= 105.6) & (lon < 150.0), 1, 2)
    )
    assert np.array_equal(m.shard_of(lat, lon), want)
    assert int(m.shard_of(0.0, 105.6)) == 1 and int(m.shard_of(0.0, -180.0)) == 2
    # the ECEF path (longitude only) agrees
    r = np.stack([np.cos(np.radians(lon)), np.sin(np.radians(lon)), np.zeros_like(lon)], 1)
    assert np.array_equal(m.shard_of_ecef(r * 7e6), want)
    # distances: haversine to the two edge meridians of each wedge, sampled pole to pole
    edge_lat = np.linspace(-90, 90, 3601)
    for k, (west, east) in enumerate(zip(cuts, cuts[1:] + (cuts[0] + 360.0,), strict=True)):
        pts = [(la, e) for e in (west, east) for la in edge_lat]
        elat, elon = np.radians(np.array(pts)).T
        pl, pn = np.radians(lat)[:, None], np.radians(lon)[:, None]
        hav = (
            np.sin((elat - pl) / 2) ** 2 + np.cos(pl) * np.cos(elat) * np.sin((elon - pn) / 2) ** 2
        )
        sampled = 2 * R_EARTH_MEAN * np.arcsin(np.sqrt(np.min(hav, axis=1)))
        inside = want == k
        got = m.distance_m(k, lat, lon)
        assert np.all(got[inside] == 0.0)
        assert np.allclose(got[~inside], sampled[~inside], atol=6e3)  # 0.05 deg sampling
        assert np.allclose(m.depth_m(k, lat, lon)[inside], sampled[inside], atol=6e3)


def test_bad_cuts_fail_naming_the_layout():
    with pytest.raises(ValueError, match="layout: 2 shard"):
        check_cuts((10.0,), 2)
    with pytest.raises(ValueError, match="layout: .*ascending"):
        check_cuts((10.0, 10.0), 2)
    with pytest.raises(ValueError, match=r"layout: .*\[-180, 180\)"):
        check_cuts((10.0, 180.0), 2)
    with pytest.raises(ValueError, match="layout: expected"):
        parse_cuts("10,east", 2)
    assert parse_cuts("-87.45,105.6", 2) == (-87.45, 105.6)


@pytest.mark.parametrize("cuts", [None, (-87.45, 105.6), (-10.0, 20.0, 100.0)])
def test_the_ray_screen_never_drops_a_ray_that_could_meet_a_target_near_the_shard(cuts):
    """Rays from satellites at 1,000 km towards points from 100 km below the surface to
    2,000 km above it, anywhere. Each ray a shard drops is sampled every 2 km over its
    8,000 km: no sample that could be a target (height within the band widened by the
    width, not behind the Earth) moved by up to the width lies in the shard's wedges."""
    shards = 4 if cuts is None else len(cuts)
    m = ShardMap(shards, cuts)
    rng = np.random.default_rng(11)
    n = 300
    sat = rng.normal(size=(n, 3))
    sat *= (R_EARTH_EQ + 1e6) / np.linalg.norm(sat, axis=1)[:, None]
    tgt = rng.normal(size=(n, 3))
    tgt *= (R_EARTH_EQ + rng.uniform(-1e5, 2e6, n))[:, None] / np.linalg.norm(tgt, axis=1)[:, None]
    u = (tgt - sat) / np.linalg.norm(tgt - sat, axis=1)[:, None]
    width, t = 12e3, np.linspace(0.0, 8e6, 4001)
    kw = {"width_m": width, "max_range_m": 8e6, "max_height_m": 3e6, "min_height_m": -2e4}
    dropped = 0
    for k in range(shards):
        keep = m.rays_reach(k, sat, u, **kw)
        dropped += int(np.sum(~keep))
        for i in np.flatnonzero(~keep):
            p = sat[i] + t[:, None] * u[i]
            h = ellipsoid_height(p)
            o, d = np.broadcast_to(sat[i], p.shape), np.broadcast_to(u[i], p.shape)
            ok = (h >= -2e4 - width) & (h <= 3e6 + width) & ~earth_blocks(o, d, t)
            q = p[ok]
            for _ in range(3):  # moved by up to the width in random directions
                off = rng.normal(size=q.shape)
                off *= rng.uniform(0, width, len(q))[:, None] / np.linalg.norm(off, axis=1)[:, None]
                lon = np.degrees(np.arctan2((q + off)[:, 1], (q + off)[:, 0]))
                assert not np.any(m.shard_of(np.zeros(lon.size), lon) == k), (k, i)
    assert dropped > 0.3 * n * (shards - 1)  # and it does drop: most rays see few wedges
    # one sensor's rays (a frame): the shortcut for a sensor over the shard's wedges
    # gives what the ray-by-ray geometry gives
    for i in range(20):
        dirs = u[rng.choice(n, 30)]
        for k in range(shards):
            one = m.rays_reach(k, sat[i], dirs, **kw)
            assert np.array_equal(one, m.rays_reach(k, np.tile(sat[i], (30, 1)), dirs, **kw))


def test_the_ray_screen_drops_nadir_looks_far_from_the_shard_and_keeps_near_ones():
    m = ShardMap(2, (-90.0, 90.0))  # shard 0: [-90, 90), shard 1 the other half
    kw = {"width_m": 12e3, "max_range_m": 8e6, "max_height_m": 3e6, "min_height_m": -2e4}
    lon = np.radians([0.0, 89.95, 120.0, 179.0])  # 89.95: 6 km from 90 E
    sat = (R_EARTH_EQ + 1e6) * np.stack([np.cos(lon), np.sin(lon), np.zeros(4)], 1)
    down = -sat / np.linalg.norm(sat, axis=1)[:, None]
    assert m.rays_reach(0, sat, down, **kw).tolist() == [True, True, False, False]
    assert m.rays_reach(1, sat, down, **kw).tolist() == [False, True, True, True]
    # a look over the pole reaches every longitude: kept by both
    polar = np.array([[0.0, 0.0, R_EARTH_EQ + 1e6]]), np.array([[0.0, 0.0, -1.0]])
    assert m.rays_reach(0, *polar, **kw)[0] and m.rays_reach(1, *polar, **kw)[0]
    assert np.all(ShardMap(1).rays_reach(0, sat, down, **kw))  # S = 1: nothing dropped


def test_the_front_door_pins_the_layout_and_a_restart_with_another_refuses(nats_broker):
    from tracklayer.services.errors import UserError
    from tracklayer.services.fusion_service.settings import FusionSettings
    from tracklayer.services.scaleout.front_door import build_front_door
    from tracklayer.services.scaleout.shard import ShardSpec

    settings = FusionSettings(fusion_id="lay")
    cuts = (-87.45, 105.6)
    _, link = build_front_door(settings, nats_broker.url, 2, layout=cuts)
    link.close()
    for other in [(), (-80.0, 105.6)]:
        with pytest.raises(UserError, match="layout"):
            build_front_door(settings, nats_broker.url, 2, layout=other)
    _, link = build_front_door(settings, nats_broker.url, 2, layout=cuts)  # the same: fine
    try:
        doc = link.call(_settings_doc(link), 10.0)
    finally:
        link.close()
    spec = ShardSpec.from_pinned(doc)
    assert spec.layout == cuts
    region = spec.new_core(1).tracker.region
    assert region.map.cuts == cuts and int(region.map.shard_of(40.0, 110.0)) == 1
    with pytest.raises(ValueError, match="layout"):
        ShardSpec.from_pinned({**doc, "layout": [10.0]})


async def _settings_doc(link) -> dict:
    import json

    bucket = await link.js.key_value(link.names.settings_bucket)
    return json.loads((await bucket.get("settings")).value)


def test_layout_command_prints_cuts_that_split_a_tracks_recording_evenly(
    simulated_mcap, tracked_mcap, capsys
):
    """``tracklayer layout`` on ``tracklayer track``'s output of the two-border scene:
    the printed cuts, applied to the reports' geodetic longitudes computed here through
    the full geodetic conversion, give the printed shares, none above 60%."""
    from pathlib import Path

    from tracklayer.fusion.geodesy import teme_to_geodetic
    from tracklayer.services.cli import main
    from tracklayer.services.wire.recording import RecordingReader

    scene = str(Path(__file__).parent / "data" / "scaleout" / "cross.toml")
    tracks = tracked_mcap(scene)
    assert main(["layout", str(tracks), "--shards", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    cuts = parse_cuts(lines[-1].removeprefix("--layout="), 2)
    out = [line for line in lines if line.startswith("shard ")]
    reports = [r for _, r in RecordingReader(tracks).tracks()]
    pos = np.array([r.position for r in reports])
    t_s = np.array([r.time_ns / 1e9 for r in reports])
    lon = teme_to_geodetic(pos, t_s)[1]
    lon = np.mod(lon + 180.0, 360.0) - 180.0
    in0 = (lon >= cuts[0]) & (lon < cuts[1])
    shares = [in0.mean(), 1.0 - in0.mean()]
    for k, share in enumerate(shares):
        assert f"shard {k}: from {cuts[k]:g} deg east, {share:.1%} of {len(reports):,}" in out[k]
    assert max(shares) <= 0.6
    # bad input: one line naming the flag or the file
    assert main(["layout", str(tracks), "--shards", "1"]) == 2
    assert "error: --shards:" in capsys.readouterr().err
    assert main(["layout", str(simulated_mcap(scene)), "--shards", "2"]) == 2
    assert "no track reports" in capsys.readouterr().err


def test_proof4_with_a_layout_both_missiles_cross_a_cut_with_one_id_and_s1_accuracy(
    simulated_mcap, tracked_mcap, tmp_path, capsys
):
    """Proof 4 with S = 2 on contiguous wedges cut at 0 and 90 E: M1 (88.5 -> 104 E)
    crosses 90 E from shard 0 to shard 1, M2 (1.5 W -> 14 E) crosses 0 from shard 1 to
    shard 0, each handed over once with its id and the next revision."""
    from test_scaleout_shards import CROSS, _reference, check_proof4

    cross = simulated_mcap(str(CROSS))
    cuts = (0.0, 90.0)
    reference = _reference(cross, 2, cuts)
    check_proof4(reference, ShardMap(2, cuts), cross, tracked_mcap, tmp_path, capsys)


def test_a_layout_through_the_broker_gives_the_in_process_reports_with_two_workers(
    simulated_mcap, tmp_path
):
    """``fusion --nats --shards 2 --layout=0,90`` with two workers (one shard each): the
    store holds exactly the in-process reference's reports on the same layout, both
    missiles handed over through the HANDOVER stream."""
    pytest.importorskip("nats")
    from scaleout_chain import Chain, front_status, wait_stored
    from test_scaleout_shards import CROSS, _reference

    from tracklayer.services.scaleout.broker import start_broker
    from tracklayer.services.store_service.track_store import canonical_bytes
    from tracklayer.services.wire.convert import report_to_proto

    cross = simulated_mcap(str(CROSS))
    reference = _reference(cross, 2, (0.0, 90.0))
    expected = {(r.track_id, r.revision): canonical_bytes(report_to_proto(r)) for _, r in reference}
    assert len(expected) == len(reference)
    broker = start_broker("127.0.0.1:0", tmp_path / "broker")
    chain = Chain(tmp_path, broker.url, "--shards", "2", "--layout=0.0,90.0")
    try:
        for i in range(2):
            chain.worker(f"w{i + 1}", "--max-shards", "1")
        replay = chain.replay(cross, "--max-speed")
        assert replay.wait(300) == 0, replay.log_tail()
        got = wait_stored(tmp_path / "t.sqlite", len(expected), timeout_s=240)
        status = front_status(
            chain.front_address,
            lambda c: all(c.get(f'shard_lag_events{{shard="{k}"}}') == 0 for k in range(2)),
        )
    finally:
        codes = chain.stop()
        broker.stop(5.0)
    assert all(rc == 0 for rc in codes.values()), codes
    assert sum(status[f'shard_handovers_in_total{{shard="{k}"}}'] for k in range(2)) == 2
    assert sorted(got) == sorted(expected)
    differ = [k for k in expected if got[k] != expected[k]][:5]
    assert not differ, f"content differs for {differ}"
