"""Sensor registration through the live fusion service: ``GetStatus`` carries every
sensor's pointing-bias estimate and Prometheus serves it as
``tracklayer_sensor_bias_urad{sensor,axis}`` with its sigma, equal to what one offline
``FusionCore`` gives over the same frames (the estimates depend only on the order)."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import pytest
from test_fusion_service import ACCEPTED, Services, Stream, run

from tracklayer.fusion.core import FusionCore
from tracklayer.services.wire.convert import frame_to_proto
from tracklayer.v1 import fusion_service_pb2 as fs

pytestmark = pytest.mark.slow


def test_getstatus_and_prometheus_show_the_offline_estimates(tmp_path, sim_result):
    sim = sim_result("biased", duration_s=120.0)  # hot spots give evidence within ~60 s
    sensors = sorted({f.sensor_id for f in sim.frames})
    core = FusionCore("fu", expected_sensors=sensors)
    for f in sim.frames:
        core.submit(f)
    core.flush()
    offline = {b.sensor_id: b for b in core.sensor_biases()}
    assert sum(1 for b in offline.values() if b.windows > 0) >= 3

    async def body():
        async with Services(tmp_path, store=False, tracker_factory=None) as s:
            await s.stop_fusion()
            await s.start_fusion(metrics=0)
            await s.stub.DeclareSensors(fs.DeclareSensorsRequest(sensor_ids=sensors))

            async def stream(sensor: str) -> None:
                own = [frame_to_proto(f) for f in sim.frames if f.sensor_id == sensor]
                st = Stream(s.stub, sensor)
                for i in range(0, len(own), 40):
                    acks = await st.send(*own[i : i + 40])
                    assert {a.status for a in acks} == {ACCEPTED}
                await st.close()

            await asyncio.gather(*(stream(sid) for sid in sensors))
            for _ in range(600):  # until the engine has applied the last closes' flush
                status = await s.stub.GetStatus(fs.GetStatusRequest())
                if status.counters["frames_applied_total"] == len(sim.frames):
                    break
                await asyncio.sleep(0.05)
            url = f"http://127.0.0.1:{s.fusion.metrics.port}/metrics"
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
            return status, text

    status, text = run(body(), timeout=180)
    live = {b.sensor_id: b for b in status.sensor_biases}
    assert set(live) == set(offline)
    for sid, b in offline.items():
        assert list(live[sid].angles_urad) == pytest.approx([a * 1e6 for a in b.angles_rad])
        assert list(live[sid].sigma_urad) == pytest.approx([v * 1e6 for v in b.sigma_rad])
        assert live[sid].windows == b.windows
    assert "registration_rejected_total" in status.counters
    sid = next(s for s, b in offline.items() if b.windows > 0)
    for axis, value in zip("xyz", offline[sid].angles_rad, strict=True):
        m = re.search(
            rf'^tracklayer_sensor_bias_urad\{{axis="{axis}",sensor="{sid}"\}} (\S+)$', text, re.M
        )
        assert m and float(m.group(1)) == pytest.approx(value * 1e6)
    assert re.search(r'^tracklayer_sensor_bias_sigma_urad\{axis="z",sensor=', text, re.M)
