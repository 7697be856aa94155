"""Helpers of the scale-out tests: a store + front door + workers chain on one broker,
and the reports it should end with (``tracklayer track``'s) and did end with."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from tracklayer.services.ops import processes
from tracklayer.services.store_service.track_store import canonical_bytes
from tracklayer.services.wire.recording import TOPIC_TRACKS, RecordingReader
from tracklayer.v1 import track_pb2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_reports(tracked: Path) -> list[bytes]:
    """``/tracks`` of ``tracklayer track``, in file order, without ``emitted_at``."""
    return [
        canonical_bytes(track_pb2.TrackReport.FromString(d))
        for _, _, d in RecordingReader(tracked).raw_messages([TOPIC_TRACKS])
    ]


def stored(db: Path) -> dict[tuple[str, int], bytes]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT track_id, revision, content FROM reports").fetchall()
    except sqlite3.OperationalError:  # the store has not created its table yet
        rows = []
    finally:
        con.close()
    return {(tid, rev): content for tid, rev, content in rows}


def wait_stored(db: Path, n: int, timeout_s: float = 60.0) -> dict[tuple[str, int], bytes]:
    """The store's reports once it holds ``n`` (or the timeout passed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = stored(db)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def read_stream_whole(
    url: str, stream: str, subject: str, keep: Callable[[object], bytes | None], what: str
) -> list[bytes]:
    """``keep(message)`` of every message of ``stream`` (``subject``) from sequence 1 to its
    last at the time of the call, in stream order (``None``: left out). Fails after 60 s
    instead of hanging when the stream cannot be read whole (e.g. purged behind a
    checkpoint); ``what`` names the stream in that failure."""
    import nats

    from tracklayer.services.scaleout.stream_reader import StreamReader

    async def read() -> list[bytes]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        last = (await js.stream_info(stream)).state.last_seq
        reader = StreamReader(js, stream, subject, 1)
        out: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + 60.0
        while reader.next_seq <= last:
            assert asyncio.get_running_loop().time() < deadline, f"{what} not readable whole"
            for m in await reader.next_batch(2.0):
                kept = keep(m)
                if kept is not None:
                    out.append(kept)
        await reader.close()
        await nc.close()
        return out

    return asyncio.run(read())


def stream_reports(url: str, fusion_id: str = "fusion") -> list[bytes]:
    """Every message of the REPORTS stream, in stream order, without ``emitted_at``."""
    from tracklayer.services.scaleout.names import Names

    names = Names(fusion_id)
    return read_stream_whole(
        url,
        names.reports_stream,
        names.reports_subject,
        lambda m: canonical_bytes(track_pb2.TrackReport.FromString(m.data)),
        "REPORTS",
    )


def journal_frames(url: str, fusion_id: str = "fusion") -> list[bytes]:
    """The FRAME events of the deployment's journal, in stream order (raw payloads); a
    journal purged behind checkpoints cannot be read whole: fails, never hangs."""
    from tracklayer.services.fusion_service.journal import EventKind
    from tracklayer.services.scaleout.events import decode_event
    from tracklayer.services.scaleout.names import Names

    def frame(m) -> bytes | None:  # noqa: ANN001 (a nats message)
        ev = decode_event(m.metadata.sequence.stream, m.data)
        return bytes(ev.payload) if ev.kind == EventKind.FRAME else None

    names = Names(fusion_id)
    return read_stream_whole(
        url, names.journal_stream, names.journal_subject, frame, "journal (purged before read?)"
    )


class Chain:
    """Store + front door (+ workers) as processes on one broker; the front door listens
    on a fixed port so that :meth:`kill_front` can restart it where the sensors are."""

    def __init__(self, work: Path, broker_url: str, *front_args: str) -> None:
        self.work, self.url, self.front_args = work, broker_url, list(front_args)
        self.logs = work / "logs"
        self.store = processes.start_server(
            "store", ["consumer", "--listen", "127.0.0.1:0", "--db", str(work / "t.sqlite")],
            self.logs,
        )  # fmt: skip
        self.front_address = f"127.0.0.1:{free_port()}"
        self.front = self._start_front()
        self.workers: dict[str, processes.ChildProcess] = {}

    def _start_front(self, timeout_s: float = 30.0) -> processes.ChildProcess:
        argv = ["fusion", "--listen", self.front_address, "--store", self.store.address,
                "--nats", self.url, "--shards", "1", "--idle-timeout", "0",
                *self.front_args]  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return processes.start_server("fusion", argv, self.logs, timeout_s=timeout_s)
            except processes.ChildError:
                if time.monotonic() > deadline:  # the port may linger a moment after a kill
                    raise
                time.sleep(0.2)

    def kill_front(self) -> float:
        """SIGKILL the front door by PID and start it again; seconds to SERVING."""
        self.front.signal(9)
        self.front.wait(30)
        t = time.monotonic()
        self.front = self._start_front()
        return time.monotonic() - t

    def worker(self, name: str, *extra: str) -> processes.ChildProcess:
        argv = ["worker", "--nats", self.url, "--id", name, *extra]
        self.workers[name] = processes.start_command(name, argv, self.logs)
        return self.workers[name]

    def replay(self, recording: Path, *pace: str) -> processes.ChildProcess:
        """``tracklayer replay`` into the front door (``pace``: default --max-speed)."""
        argv = [
            "replay",
            str(recording),
            "--fusion",
            self.front_address,
            *(pace or ["--max-speed"]),
        ]
        return processes.start_command("replay", argv, self.logs)

    def stop(self) -> dict[str, int]:
        kids = [*self.workers.values(), self.front, self.store]
        return processes.stop_all([k for k in kids if k.alive()], grace_s=20)


def wait_for_line(child: processes.ChildProcess, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in child.log_path.read_text(errors="replace"):
        assert child.alive(), child.describe_exit()
        assert time.monotonic() < deadline, f"no {text!r} in {child.log_path}"
        time.sleep(0.05)


def front_status(address: str, want: Callable[[dict[str, int]], bool], timeout_s: float = 30.0):
    """The front door's GetStatus counters once ``want(counters)`` holds (or the timeout)."""
    import grpc

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as ch:
        stub = fs_grpc.FusionServiceStub(ch)
        while True:
            counters = dict(stub.GetStatus(fs.GetStatusRequest(), timeout=10).counters)
            if want(counters) or time.monotonic() > deadline:
                return counters
            time.sleep(0.3)


class LiveSubscriber:
    """``SubscribeLiveTracks`` on the front door in a thread: every report, in order."""

    def __init__(self, address: str) -> None:
        import threading

        import grpc

        from tracklayer.v1 import fusion_service_pb2 as fs
        from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

        self.reports: list[bytes] = []
        self._channel = grpc.insecure_channel(address)
        stub = fs_grpc.FusionServiceStub(self._channel)
        self._call = stub.SubscribeLiveTracks(fs.SubscribeLiveTracksRequest())
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        import grpc

        try:
            for resp in self._call:
                self.reports += [canonical_bytes(r) for r in resp.reports]
        except grpc.RpcError:
            pass

    def wait_for(self, n: int, timeout_s: float = 30.0) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while len(self.reports) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        return list(self.reports)

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(5)
        self._channel.close()


def list_live(address: str) -> list[bytes]:
    """The front door's ``ListLiveTracks``, without ``emitted_at``."""
    import grpc

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    with grpc.insecure_channel(address) as ch:
        resp = fs_grpc.FusionServiceStub(ch).ListLiveTracks(fs.ListLiveTracksRequest(), timeout=10)
    return [canonical_bytes(r) for r in resp.tracks]


def journal_bounds(url: str, fusion_id: str = "fusion") -> tuple[int, int]:
    """(first, last) sequence of the deployment's journal stream."""
    import nats

    from tracklayer.services.scaleout.names import Names

    async def read() -> tuple[int, int]:
        nc = await nats.connect(url)
        info = await nc.jetstream().stream_info(Names(fusion_id).journal_stream)
        await nc.close()
        return int(info.state.first_seq), int(info.state.last_seq)

    return asyncio.run(read())
