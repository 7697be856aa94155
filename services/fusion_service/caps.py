"""Caps without an allow-list (issue 15 item 6): distinct sensors, streams per client.

Without ``--sensors`` any client could make the fusion core remember any number of
sensor ids (each keeps its ordering state for good) or open any number of streams.
Two live-only caps stop that before anything reaches the core or the journal:

* at most ``max_sensors`` distinct sensors (declared, streaming or with a frame):
  a declaration, stream or frame naming one more ends that call ``RESOURCE_EXHAUSTED``
  naming ``--max-sensors``; sensors already known are never refused;
* at most ``max_streams_per_client`` open ``StreamFrames`` calls per client identity
  (the mTLS identities, else the peer's address without its port): one more ends
  ``RESOURCE_EXHAUSTED`` naming ``--max-streams-per-client``.

Refusals are counted as ``resource_exhausted_total{limit="..."}``. Replay needs no
check: the journal holds only what was admitted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tracklayer.services.errors import ResourceExhausted
from tracklayer.services.limits import MAX_SENSOR_ID_CHARS


class TooManySensors(ResourceExhausted):
    """One more distinct sensor than ``--max-sensors``."""


class TooManyStreams(ResourceExhausted):
    """One more open stream of a client than ``--max-streams-per-client``."""


def client_identity(peer: str, identities: frozenset[str] | None) -> str:
    """Who a stream belongs to: its certificate's identities (mTLS), else the peer's
    address without the port (``ipv4:127.0.0.1:5000`` -> ``ipv4:127.0.0.1``)."""
    if identities:
        return "cert:" + ",".join(sorted(identities))
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() else peer


class Caps:
    """The two caps of one engine; ``known`` are the sensors the core already holds."""

    def __init__(self, max_sensors: int, max_streams_per_client: int) -> None:
        self.max_sensors = max_sensors
        self.max_streams = max_streams_per_client
        self._sensors: set[str] = set()
        self._streams: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # limit flag -> refusals

    def know(self, sensor_ids: Iterable[str]) -> None:
        """Sensors the core holds already (after a replay): never refused."""
        self._sensors.update(sensor_ids)

    def admit_sensors(self, sensor_ids: Iterable[str]) -> None:
        """Admit every id (all or none); raises :class:`TooManySensors` naming the limit."""
        new = {s for s in sensor_ids if s and s not in self._sensors}
        if not new:
            return
        if len(self._sensors) + len(new) > self.max_sensors > 0:
            self.refused["max_sensors"] += 1
            first = min(new)[:MAX_SENSOR_ID_CHARS]
            raise TooManySensors(
                f"sensor_id: {first!r} would exceed the limit of {self.max_sensors} distinct "
                f"sensors (--max-sensors; {len(self._sensors)} known)"
            )
        self._sensors.update(new)

    def open_stream(self, client: str) -> None:
        """Count one more stream of ``client``; raises :class:`TooManyStreams`."""
        if self._streams[client] >= self.max_streams > 0:
            self.refused["max_streams_per_client"] += 1
            raise TooManyStreams(
                f"streams: {client[:300]} already has {self._streams[client]} open streams, "
                f"the limit (--max-streams-per-client)"
            )
        self._streams[client] += 1

    def close_stream(self, client: str) -> None:
        self._streams[client] -= 1
        if self._streams[client] <= 0:
            del self._streams[client]

    def counters(self) -> dict[str, int]:
        out = {
            f'resource_exhausted_total{{limit="{k}"}}': self.refused[k]
            for k in ("max_sensors", "max_streams_per_client")
        }
        out["sensors_known"] = len(self._sensors)
        return out
