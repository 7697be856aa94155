"""The long-outage rule through the fusion service (issue 15, DESIGN §6).

A sensor silent for longer than the 600 s clock-jump limit loses its first frame
back and nothing more; the time of that REJECTED frame is journaled (SEEN) so a
restart judges the next frame the same way.
"""

from __future__ import annotations

from test_fusion_service import ACCEPTED, REJECTED, Services, Stream, frame, run


def test_sensor_back_from_a_25_minute_outage_loses_one_frame(tmp_path):
    async def body():
        async with Services(tmp_path, store=False) as s:
            st = Stream(s.stub, "sat-1-1")
            acks = await st.send(frame("sat-1-1", 1, 0.0), frame("sat-1-1", 2, 1.0))
            assert [a.status for a in acks] == [ACCEPTED, ACCEPTED]
            back = await st.send(*(frame("sat-1-1", 3 + k, 1500.0 + k) for k in range(5)))
            assert [a.status for a in back] == [REJECTED] + [ACCEPTED] * 4
            assert back[0].reason.startswith("time:") and "600 s" in back[0].reason
            await st.close()

    run(body())


def test_the_rejected_frames_time_survives_a_crash_and_restart(tmp_path):
    async def body():
        s = Services(tmp_path, store=False)
        await s.start_fusion()
        st = Stream(s.stub, "sat-1-1")
        await st.send(frame("sat-1-1", 1, 0.0))
        (first_back,) = await st.send(frame("sat-1-1", 2, 1500.0))
        assert first_back.status == REJECTED
        seen = [ev for ev in s.fusion.engine.journal.events() if ev.kind.name == "SEEN"]
        assert [(ev.sensor_id, ev.payload) for ev in seen] == [
            ("sat-1-1", str((1_767_225_600 + 1500) * 1_000_000_000).encode())
        ]
        await s.stop_fusion(kill=True)
        await s.start_fusion()  # full replay of the journal
        st = Stream(s.stub, "sat-1-1")
        (second_back,) = await st.send(frame("sat-1-1", 3, 1501.0))
        assert second_back.status == ACCEPTED, second_back.reason
        await st.close()
        await s.stop_fusion()

    run(body())
