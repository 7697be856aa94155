"""The live map in a real browser: ``tracklayer consumer --http`` as a process, scripted
reports published over gRPC, the page opened in the distribution's headless Chromium
(Debian packages ``chromium`` and ``chromium-driver``; ``.ci/run`` installs them) and
checked from its own state (``window.tracklayerMap``); the page gets the store's
messages over a WebSocket (``/live``).

Skipped, with the reason, only when /usr/bin/chromium or /usr/bin/chromedriver is absent.
The screenshots go to the test's tmp directory (``live-map.png``, ``live-map-1000.png``).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tracklayer.v1 import track_pb2, track_store_service_pb2_grpc
from tracklayer.v1 import track_store_service_pb2 as ts

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="live map browser test needs /usr/bin/chromium and /usr/bin/chromedriver "
    "(apt-get install chromium chromium-driver)",
)
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
CONFIRMED, COASTING, DELETED = 2, 3, 4
BOOST, MIDCOURSE, REENTRY = 1, 2, 3
SATELLITES = {"sat-1-2": (38.0, 48.0), "sat-3-4": (58.0, 88.0)}  # sub-points, deg


def report(
    track_id: str,
    revision: int,
    lat: float,
    lon: float,
    *,
    status: int = CONFIRMED,
    phase: int = MIDCOURSE,
    alt: float = 800e3,
    impact: tuple[float, float] | None = None,
    launch: tuple[float, float] | None = None,
) -> track_pb2.TrackReport:
    """A report at (lat, lon) deg, ``alt`` m, state time T0 + revision s, stamped now."""
    r = track_pb2.TrackReport(track_id=track_id, revision=revision, status=status, phase=phase)
    r.time.seconds = T0 + revision
    r.position_eci.x, r.position_eci.y, r.position_eci.z = 6.0e6, 2.0e6, 2.5e6
    r.velocity_eci.x, r.velocity_eci.y = 3.0e3, 4.0e3  # 5 km/s
    r.covariance.extend([float(i == j) for i in range(6) for j in range(6)])
    r.latitude_deg, r.longitude_deg, r.altitude_m = lat, lon, alt
    r.sensor_ids.extend(["sat-1-2", "sat-3-4"])
    for sid, (s_lat, s_lon) in SATELLITES.items():  # where the fusion service placed them
        p = r.sensor_positions.add(sensor_id=sid, latitude_deg=s_lat, longitude_deg=s_lon)
        p.altitude_m = 800e3
        p.time.seconds = T0 + revision
    r.update_count = revision * 3
    r.emitted_at.FromNanoseconds(time.time_ns())
    if impact is not None:
        r.impact.latitude_deg, r.impact.longitude_deg = impact
        r.impact.time.seconds = T0 + 900
        r.impact.semi_major_m, r.impact.semi_minor_m, r.impact.orientation_deg = 40e3, 15e3, 30.0
    if launch is not None:
        r.launch.latitude_deg, r.launch.longitude_deg = launch
        r.launch.time.seconds = T0 - 300
        r.launch.semi_major_m, r.launch.semi_minor_m, r.launch.orientation_deg = 8e3, 3e3, 10.0
    return r


class Store:
    """``tracklayer consumer --http 127.0.0.1:0`` as a process, with a publisher."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "store.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tracklayer.services.cli", "consumer"]
            + ["--listen", "127.0.0.1:0", "--db", str(workdir / "tracks.sqlite")]
            + ["--http", "127.0.0.1:0"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            text = self.log_path.read_text()
            grpc_addr = re.search(r"listening on (\S+)", text)
            url = re.search(r"live map on (\S+)", text)
            if grpc_addr and url:
                break
            assert self.proc.poll() is None, text
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        self.url = url.group(1)
        self.channel = grpc.insecure_channel(grpc_addr.group(1))
        self.stub = track_store_service_pb2_grpc.TrackStoreServiceStub(self.channel)

    def publish(self, *reports: track_pb2.TrackReport) -> None:
        acks = [
            a
            for resp in self.stub.PublishTracks(iter([ts.PublishTracksRequest(reports=reports)]))
            for a in resp.acks
        ]
        assert [a.status for a in acks] == [track_pb2.PUBLISH_STATUS_STORED] * len(reports)

    def stop(self) -> int:
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            self._log.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path)
    yield s
    assert s.stop() == 0, s.log_path.read_text()


@pytest.fixture
def browser() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tracklayer-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1600,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(
    driver, script: str, timeout: float = 5.0, what: str = "", poll: float = 0.02
) -> float:
    """Seconds until the page's ``script`` (a JS expression) is truthy, asked every ``poll``
    seconds; fails after timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if driver.execute_script(f"return !!({script});"):
            return time.monotonic() - t0
        time.sleep(poll)
    state = driver.execute_script(
        "const m = window.tracklayerMap; return m && {ids: [...m.tracks.keys()], "
        "stats: m.stats, drawn: m.drawn};"
    )
    pytest.fail(f"page never showed {what or script} within {timeout} s; state: {state}")


def wait_in_page(driver, script: str, timeout: float, what: str) -> None:
    """Wait until the page's ``script`` (a JS expression) is truthy, looked at by the page
    itself every 0.1 s (one WebDriver call: a call per look costs the page's renderer
    more than the look, and competes with what is measured); fails after timeout."""
    ok = driver.execute_async_script(
        f"""
        const done = arguments[arguments.length - 1], t0 = performance.now();
        (function look() {{
          if ({script}) return done(true);
          if (performance.now() - t0 > {timeout * 1000}) return done(false);
          setTimeout(look, 100);
        }})();
        """
    )
    if not ok:
        wait_for(driver, script, 0.1, what)  # fails with the page's state


def track(driver, track_id: str) -> dict | None:
    return driver.execute_script(
        "const t = window.tracklayerMap.tracks.get(arguments[0]);"
        "return t ? {rep: t.rep, trail: t.trail} : null;",
        track_id,
    )


def keep_screenshot(driver, path: Path) -> None:
    driver.save_screenshot(str(path))
    copy_to = os.environ.get("TRACKLAYER_SCREENSHOT_DIR")  # to look at after the run
    if copy_to:
        shutil.copy(path, Path(copy_to) / path.name)


LAND_FILL = [0x1B, 0x2F, 0x47]  # geo.js drawLand's fill colour


def assert_lakes_are_not_land(driver) -> None:
    """In the current view: land is filled, the Caspian Sea (a hole in Eurasia's
    polygon in Natural Earth's land) is not."""

    def at(lat: float, lon: float) -> list[int] | None:
        return driver.execute_script(
            "return window.tracklayerMap.backgroundAt(arguments[0], arguments[1])", lat, lon
        )

    for lat, lon in ((48.5, 62.5), (52.5, 41.5)):  # Kazakhstan, Russia
        assert at(lat, lon)[:3] == LAND_FILL, (lat, lon, at(lat, lon))
    for lat, lon in ((42.0, 50.5), (39.0, 51.0)):  # the middle and south Caspian
        pixel = at(lat, lon)
        assert pixel is not None and pixel[2] < LAND_FILL[2] - 5, (lat, lon, pixel)


def test_tracks_appear_move_and_disappear_as_the_reports_say(store, browser, tmp_path):
    """One page through a track's life: first picture, moves and a new track, deletion
    (a late older revision does not revive it), hover details, the quiet warning, flat view."""
    first_picture(store, browser)
    latency = moves_and_deletions(store, browser)
    print(f"\nlive map: report published -> shown in {latency * 1000:.0f} ms")
    hover_details(browser, tmp_path)
    quiet_warning_and_flat_view(browser, tmp_path)


def first_picture(store, browser) -> None:
    """Two tracks published before the page opens: drawn with their sensors, impact and
    launch, framed on screen, over a live binary WebSocket."""
    store.publish(
        report("f-1", 1, 45.0, 60.0, phase=MIDCOURSE, impact=(52.0, 80.0), launch=(40.0, 55.0)),
        report("f-2", 1, 30.0, 70.0, phase=BOOST, alt=90e3),
    )
    browser.get(store.url)
    wait_for(browser, "window.tracklayerMap && window.tracklayerMap.tracks.size === 2", 10)
    wait_for(browser, "window.tracklayerMap.landRings > 100", 10, "the land outlines")
    first = track(browser, "f-1")
    assert first["rep"]["lat"] == 45.0 and first["rep"]["lon"] == 60.0
    assert first["rep"]["phase"] == "MIDCOURSE" and first["rep"]["sensors"] == [
        "sat-1-2",
        "sat-3-4",
    ]
    assert math.isclose(first["rep"]["speed"], 5000.0)
    wait_for(browser, "window.tracklayerMap.drawn.impactEllipses >= 1", 5, "an impact ellipse")
    assert browser.execute_script("return window.tracklayerMap.drawn.impactEllipsePx") > 3
    assert browser.execute_script("return window.tracklayerMap.drawn.launches") >= 1
    assert browser.find_element("id", "conn").text == "live"
    assert browser.execute_script(  # pushed by the store, binary: no polling, no text
        "const s = window.tracklayerMap.source;"
        "return s instanceof WebSocket && s.binaryType === 'arraybuffer' && s.readyState === 1"
    )
    rate_stat = browser.find_element("id", "s-rate").find_element("xpath", "..")
    assert "warn" not in rate_stat.get_attribute("class")  # reports are arriving
    # The satellites where the reports placed them, with lines of sight to both tracks.
    wait_for(browser, "window.tracklayerMap.drawn.satellites === 2", 3, "two satellites")
    assert browser.execute_script("return window.tracklayerMap.drawn.sightLines") == 4
    assert browser.execute_script("return window.tracklayerMap.drawn.scaleKm") > 0
    # The framing shows the whole picture: tracks, impact and launch points on screen.
    width, height = browser.execute_script(
        "const c = document.getElementById('map');return [c.clientWidth, c.clientHeight];"
    )
    for lat, lon in ((45.0, 60.0), (30.0, 70.0), (52.0, 80.0), (40.0, 55.0)):
        x, y, visible = browser.execute_script(
            "return window.tracklayerMap.toScreen(arguments[0], arguments[1])", lat, lon
        )
        assert visible and 0 < x < width and 0 < y < height, (lat, lon, x, y)
    for sid, (s_lat, s_lon) in SATELLITES.items():
        pos = browser.execute_script(
            "return window.tracklayerMap.sensors.find(s => s.id === arguments[0]).pos", sid
        )
        assert (pos["lat"], pos["lon"], pos["alt"], pos["t"]) == (s_lat, s_lon, 800e3, T0 + 1)


def moves_and_deletions(store, browser) -> float:
    """Reports published while the page is open; the publish-to-shown latency, s."""
    # Published after the page loaded: moved, and a new track; both within 2 s.
    t_sent = time.monotonic()
    store.publish(
        report("f-1", 2, 46.0, 63.0, phase=REENTRY, alt=300e3, impact=(52.1, 80.2)),
        report("f-3", 1, 50.0, 75.0, phase=REENTRY, alt=60e3, impact=(51.0, 77.0)),
    )
    wait_for(browser, "window.tracklayerMap.tracks.get('f-1').rep.rev === 2", 2.0, "f-1 moved")
    wait_for(browser, "window.tracklayerMap.tracks.has('f-3')", 2.0, "new track f-3")
    latency = time.monotonic() - t_sent
    moved = track(browser, "f-1")
    assert (moved["rep"]["lat"], moved["rep"]["lon"], moved["rep"]["phase"]) == (
        46.0,
        63.0,
        "REENTRY",
    )
    assert [p[1:3] for p in moved["trail"]] == [[45.0, 60.0], [46.0, 63.0]]
    wait_for(browser, "window.tracklayerMap.drawn.tracks === 3", 2.0, "three drawn tracks")

    # Deleted: gone from the page; a coasting track stays.
    store.publish(
        report("f-2", 3, 31.0, 71.0, status=DELETED),
        report("f-3", 2, 50.5, 76.0, status=COASTING, phase=REENTRY, alt=40e3, impact=(51.0, 77.0)),
    )
    wait_for(browser, "!window.tracklayerMap.tracks.has('f-2')", 2.0, "f-2 deleted")
    assert sorted(browser.execute_script("return [...window.tracklayerMap.tracks.keys()]")) == [
        "f-1",
        "f-3",
    ]
    wait_for(browser, "window.tracklayerMap.drawn.tracks === 2", 2.0, "two drawn tracks")
    # A revision older than the deletion, arriving late (stored, as every revision is),
    # does not bring f-2 back; f-3's report in the same batch shows it was delivered.
    store.publish(
        report("f-2", 2, 31.5, 71.5),
        report("f-3", 3, 50.8, 76.5, status=COASTING, phase=REENTRY, alt=30e3, impact=(51.0, 77.0)),
    )
    wait_for(browser, "window.tracklayerMap.tracks.get('f-3').rep.rev === 3", 2.0, "f-3 rev 3")
    time.sleep(0.2)
    assert not browser.execute_script("return window.tracklayerMap.tracks.has('f-2')")
    wait_for(browser, "document.getElementById('s-live').textContent === '2'", 3.0)
    sats = browser.execute_script("return window.tracklayerMap.sensors.map(s => s.id)")
    assert sats == ["sat-1-2", "sat-3-4"]

    return latency


def hover_details(browser, tmp_path) -> None:
    """Hovering a track and a satellite shows what an operator asks for."""
    # Hover shows the details an operator asks for.
    x, y = browser.execute_script("const m = window.tracklayerMap; return m.screenOf('f-1');")
    from selenium.webdriver import ActionChains

    canvas = browser.find_element("id", "map")
    rect = canvas.rect
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(x - rect["width"] / 2), int(y - rect["height"] / 2)
    ).perform()
    wait_for(browser, "!document.getElementById('tip').hidden", 2.0, "the hover details")
    tip = browser.find_element("id", "tip").text
    for text in ("f-1", "300.0 km", "5.00 km/s", "sat-1-2", "REENTRY", "CONFIRMED"):
        assert text in tip, tip
    x, y = browser.execute_script("return window.tracklayerMap.satelliteScreenOf('sat-3-4')")
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(x - rect["width"] / 2), int(y - rect["height"] / 2)
    ).perform()
    wait_for(browser, "document.getElementById('tip').textContent.includes('sat-3-4')", 2.0)
    tip = browser.find_element("id", "tip").text
    for text in ("satellite", "800 km", "58.00°, 88.00°", "f-1, f-3"):
        assert text in tip, tip
    keep_screenshot(browser, tmp_path / "live-map.png")
    assert_lakes_are_not_land(browser)


def quiet_warning_and_flat_view(browser, tmp_path) -> None:
    """No report for 5 s while tracks are live: the status bar warns; the flat view draws."""
    # No report for 5 s while tracks are live: the status bar says so.
    wait_for(
        browser,
        "document.getElementById('s-rate').parentElement.classList.contains('warn')",
        9.0,
        "the quiet-picture warning",
    )
    assert browser.find_element("id", "s-rate").text == "0"

    browser.execute_script("window.tracklayerMap.setView('flat')")
    wait_for(
        browser,
        "window.tracklayerMap.stats.frames > 0 && window.tracklayerMap.view.mode === 'flat'",
    )
    time.sleep(0.3)
    keep_screenshot(browser, tmp_path / "live-map-flat.png")
    assert_lakes_are_not_land(browser)


def raid(n: int, revision: int) -> list[track_pb2.TrackReport]:
    """``n`` tracks in a raid's spread, each moved a little per revision."""
    out = []
    for i in range(n):
        lat = 35.0 + (i % 40) * 0.5 + revision * 0.05
        lon = 100.0 + (i // 40) * 0.8 + revision * 0.1
        out.append(
            report(
                f"r-{i}",
                revision,
                lat,
                lon,
                phase=(BOOST, MIDCOURSE, REENTRY)[i % 3],
                impact=(lat + 10, lon + 60) if i % 10 == 0 else None,
            )
        )
    return out


REVISIONS = 30  # ~32 updates: the p95 is their third-largest


@pytest.mark.alone  # frame times: nothing of the suite runs beside it (tests/parallel.py)
def test_a_thousand_live_tracks_update_in_under_100_ms(store, browser, tmp_path):
    # Built before the page opens: the test's own work must not compete with the page's.
    revisions = [raid(1000, rev) for rev in range(1, REVISIONS + 1)]
    browser.get(store.url)
    wait_for(browser, "window.tracklayerMap && window.tracklayerMap.landRings > 100", 10)
    for rev, reports in enumerate(revisions, start=1):
        now = time.time_ns()
        for r in reports:
            r.emitted_at.FromNanoseconds(now)  # the store's lag is from here
        for k in range(0, 1000, 250):  # a raid's store gets reports in batches
            store.publish(*reports[k : k + 250])
        wait_in_page(  # looked at in the page: no WebDriver round trip per look
            browser,
            "window.tracklayerMap.tracks.size === 1000 && "
            f"[...window.tracklayerMap.tracks.values()].every(t => t.rep.rev === {rev})",
            5.0,
            f"revision {rev} of 1000 tracks",
        )
    time.sleep(0.3)
    stats = browser.execute_script("return window.tracklayerMap.stats")
    backgrounds = browser.execute_script("return window.tracklayerMap.backgrounds")

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[int(q * (len(values) - 1))]

    updates, frames, decode = stats["updateMs"], stats["frameMs"], stats["decodeMs"]
    print(
        f"\nlive map, 1,000 tracks: {len(updates)} updates, update (message -> drawn) "
        f"median {pct(updates, 0.5):.1f} ms, p95 {pct(updates, 0.95):.1f} ms, max "
        f"{max(updates):.1f} ms; {len(frames)} frames, median {pct(frames, 0.5):.1f} ms, p95 "
        f"{pct(frames, 0.95):.1f} ms, max {max(frames):.1f} ms; decoding median "
        f"{pct(decode, 0.5):.1f} ms, max {max(decode):.1f} ms; land drawn {backgrounds} times"
    )
    assert len(updates) >= REVISIONS
    assert browser.execute_script("return window.tracklayerMap.drawn.tracks") > 900
    # 2,000 lines of sight would hide the raid: none until a track or satellite is chosen
    drawn = browser.execute_script("return window.tracklayerMap.drawn")
    assert drawn["satellites"] == 2 and drawn["sightLines"] == 0
    # A raid drifting across the view keeps its framing: the land (the costliest drawing)
    # is not drawn again on every update (before the land loads, then the first framings).
    assert backgrounds <= 6, backgrounds

    # Every update under 100 ms (issue 16), and every frame, re-framings included. On
    # failure: where the slowest updates' time went (decode, apply, wait, draw; ms).
    def spent(p: dict) -> float:  # an update's parts, without the draw's steps
        return sum(v for k, v in p.items() if k != "steps" and v is not None)

    slowest = sorted(stats["parts"], key=lambda p: -spent(p))[:4]
    assert pct(updates, 0.95) < 100.0, (sorted(updates), slowest)
    assert pct(frames, 0.95) < 100.0, (sorted(frames), slowest)
    keep_screenshot(browser, tmp_path / "live-map-1000.png")


def test_the_pages_picture_keeps_a_raids_trails_within_its_budget(store, browser):
    """picture.js on its own, in the page: 1,000 tracks keep 20 trail points each (20,000
    in all, projected every frame), 10 tracks keep 120; a revision older than the one
    shown changes nothing."""
    browser.get(store.url)
    wait_for(browser, "window.tracklayerPicture", 10)
    kept = browser.execute_script(
        """
        const out = {};
        for (const n of [10, 1000]) {
          const p = window.tracklayerPicture();
          for (let rev = 1; rev <= 130; rev++) {
            for (let i = 0; i < n; i++) {
              p.apply({id: `t-${i}`, rev, status: "CONFIRMED", phase: "MIDCOURSE", t: rev,
                       lat: 10 + rev * 0.01, lon: 20, alt: 1e5, sensors: [], placed: []});
            }
          }
          p.apply({id: "t-0", rev: 5, status: "CONFIRMED", phase: "BOOST", t: 5, lat: 0,
                   lon: 0, alt: 0, sensors: [], placed: []});
          const lengths = [...p.tracks.values()].map((t) => t.trail.length);
          out[n] = {min: Math.min(...lengths), max: Math.max(...lengths),
                    rev: p.tracks.get("t-0").rep.rev, last: p.tracks.get("t-0").trail.at(-1)};
        }
        return out;
        """
    )
    assert kept["10"]["min"] == kept["10"]["max"] == 120
    assert kept["1000"]["min"] == kept["1000"]["max"] == 20
    for n in ("10", "1000"):
        assert kept[n]["rev"] == 130 and kept[n]["last"][0] == 130
