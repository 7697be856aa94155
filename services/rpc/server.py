"""Plumbing shared by every tracklayer gRPC server (grpc.aio, DESIGN §8, §9).

- :func:`start_grpc_server`: an aio server on ``HOST:PORT`` (port 0 = ephemeral)
  with ``grpc.health.v1.Health`` and server reflection registered beside the
  given services.
- :class:`ServerHandle.stop`: graceful stop (health NOT_SERVING first, then
  ``server.stop(grace)``).
- :func:`wait_for_shutdown_signal`: resolves on SIGTERM/SIGINT.
- :class:`MetricsEndpoint`: a Prometheus endpoint whose samples are read, at
  scrape time, from the same counter dict ``GetStatus`` returns, so both always
  agree. Keys are Prometheus sample names, labels in braces:
  ``frames_total{status="accepted"}``.
- :func:`kv` and :func:`configure_logging`: structured ``key=value`` log lines.
- :func:`stream_subscription`: the body of a live-report subscription RPC.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from tracklayer.services.errors import UserError
from tracklayer.services.limits import KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS, MAX_MESSAGE_BYTES
from tracklayer.services.rpc.broadcast import BroadcastClosed, SubscriberTooSlow, Subscription
from tracklayer.services.rpc.interceptors import server_interceptors

log = logging.getLogger("tracklayer.services")

GRPC_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),  # newer gRPC: default 60 s
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    # gRPC's default (5 min) would hold a channel's keepalive pings back while no data
    # is sent, exactly when a stalled peer must be noticed
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
)
SERVER_OPTIONS: tuple[tuple[str, int], ...] = GRPC_OPTIONS + (
    # accept the clients' keepalive pings (gRPC's default, 5 min, answers pings every
    # 10 s with GOAWAY "too_many_pings")
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.so_reuseport", 0),
)


# ---------------------------------------------------------------- logging


def _fmt_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def kv(event: str, **fields: object) -> str:
    """One structured log line: ``event=NAME key=value ...`` (values quoted when needed)."""
    parts = [f"event={_fmt_value(event)}"]
    parts += [f"{k}={_fmt_value(v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


_Item = TypeVar("_Item")
_Response = TypeVar("_Response")


async def stream_subscription(
    sub: Subscription[_Item],
    current: Sequence[_Item],
    response: Callable[..., _Response],
    context: grpc.aio.ServicerContext,
    *,
    include_current: bool,
    logger: logging.Logger,
) -> AsyncIterator[_Response]:
    """Yield ``response(reports=current)`` (if any), then one per batch ``sub`` delivers.

    Ends cleanly when the broadcaster closes (server shutdown), raises
    :class:`SubscriberTooSlow` (RESOURCE_EXHAUSTED, ``rpc.status``) when the
    subscriber falls too far behind, and always
    closes ``sub`` and logs ``subscribe_end`` with the outcome and reports sent.
    Run it under ``contextlib.aclosing`` so it is closed with the calling RPC.
    """
    peer = context.peer()
    logger.info(kv("subscribe_open", peer=peer, include_current=include_current))
    outcome, sent = "closed", 0
    try:
        if current:
            sent += len(current)
            yield response(reports=current)
        while True:
            batch = await sub.get()
            sent += len(batch)
            yield response(reports=batch)
    except BroadcastClosed:
        outcome = "server_shutdown"
    except SubscriberTooSlow:
        outcome = "too_slow"
        raise
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        sub.close()
        logger.info(kv("subscribe_end", peer=peer, outcome=outcome, reports=sent))


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is when a record is emitted, so
    a server thread that outlives a swapped stderr (pytest's capture, an embedding
    program) never writes to a closed stream."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: int | str = logging.INFO) -> None:
    """Log ``key=value`` lines to stderr (idempotent; used by the server commands)."""
    root = logging.getLogger()
    if any(getattr(h, "_tracklayer", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = _StderrHandler(sys.stderr)
    formatter = logging.Formatter(
        "ts=%(asctime)s.%(msecs)03dZ level=%(levelname)s logger=%(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler._tracklayer = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


# ---------------------------------------------------------------- addresses

_HOSTPORT = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")


def parse_host_port(text: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port); UserError naming ``flag``."""
    m = _HOSTPORT.match(text.strip())
    if not m:
        raise UserError(f"{flag}: expected HOST:PORT, got {text!r}")
    port = int(m.group("port"))
    if port > 65535:
        raise UserError(f"{flag}: port {port} is out of range 0-65535")
    host = m.group("v6") or m.group("host") or "0.0.0.0"
    return host, port


def grpc_target(host: str, port: int) -> str:
    """A gRPC address string for host and port (brackets IPv6 literals)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------- server


@dataclass
class ServerHandle:
    """A started aio server: ``port`` is the bound port (resolved when 0 was asked)."""

    server: grpc.aio.Server
    port: int
    host: str
    health: HealthServicer
    name: str

    @property
    def address(self) -> str:
        """``HOST:PORT`` clients can dial (loopback when bound to all interfaces)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = "::1" if host == "::" else host
        return grpc_target(host, self.port)

    async def stop(self, grace: float = 2.0) -> None:
        """Health to NOT_SERVING, stop accepting, let calls finish for ``grace`` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


class ServedByHandle:
    """Mixin for a running service object with a ``handle: ServerHandle`` field:
    exposes the handle's bound ``port`` and dialable ``address``."""

    handle: ServerHandle

    @property
    def port(self) -> int:
        return self.handle.port

    @property
    def address(self) -> str:
        """``HOST:PORT`` a client can dial."""
        return self.handle.address


async def start_grpc_server(
    listen: str,
    *,
    name: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Iterable[str],
    credentials: grpc.ServerCredentials | None = None,
    flag: str = "--listen",
) -> ServerHandle:
    """Start an aio server on ``listen`` with ``register``'s services, health and reflection.

    ``service_names``: full names (``tracklayer.v1.FusionService``) reported
    SERVING by the health service and listed by reflection. ``credentials``:
    TLS server credentials, plaintext when None (said so in the log line).
    """
    host, port = parse_host_port(listen, flag)
    server = grpc.aio.server(options=list(SERVER_OPTIONS), interceptors=server_interceptors())
    register(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = list(service_names)
    reflection.enable_server_reflection(
        names
        + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    address = grpc_target(host, port)
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise UserError(f"{flag}: cannot listen on {address}: {exc}") from None
    if bound == 0:
        raise UserError(f"{flag}: cannot listen on {address} (address in use or not local)")
    await server.start()
    for svc in ["", *names]:
        await health.set(svc, health_pb2.HealthCheckResponse.SERVING)
    handle = ServerHandle(server=server, port=bound, host=host, health=health, name=name)
    log.info(
        kv(
            "server_started",
            server=name,
            listen=grpc_target(host, bound),
            port=bound,
            transport="plaintext: no TLS" if credentials is None else "mTLS",
        )
    )
    return handle


async def wait_for_shutdown_signal() -> str:
    """Wait for SIGTERM or SIGINT (handlers restored afterwards); returns the signal name."""
    loop = asyncio.get_running_loop()
    fired: asyncio.Future[str] = loop.create_future()
    sigs = (signal.SIGTERM, signal.SIGINT)

    def _on(sig: signal.Signals) -> None:
        if not fired.done():
            fired.set_result(sig.name)

    for sig in sigs:
        loop.add_signal_handler(sig, _on, sig)
    try:
        return await fired
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)


# ---------------------------------------------------------------- metrics

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_sample_key(key: str) -> tuple[str, dict[str, str]]:
    """``frames_total{status="accepted"}`` -> ("frames_total", {"status": "accepted"})."""
    m = _SAMPLE.match(key)
    if not m:
        raise ValueError(f"counter name {key!r} is not a Prometheus sample name")
    labels = dict(_LABEL.findall(m.group("labels") or ""))
    return m.group("name"), labels


def sample_key(name: str, **labels: str) -> str:
    """The inverse of :func:`parse_sample_key` (labels sorted by name)."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


class _CountersCollector:
    """prometheus_client collector reading the live counter dict at scrape time."""

    def __init__(
        self,
        source: Callable[[], Mapping[str, int]],
        gauges: frozenset[str],
        help_text: Mapping[str, str],
    ) -> None:
        self._source = source
        self._gauges = gauges
        self._help = help_text

    def collect(self):  # noqa: ANN201 - prometheus_client protocol
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families: dict[str, object] = {}
        grouped: dict[str, list[tuple[dict[str, str], int]]] = {}
        for key, value in self._source().items():
            name, labels = parse_sample_key(key)
            grouped.setdefault(name, []).append((labels, value))
        for name in sorted(grouped):
            label_names = sorted({k for labels, _ in grouped[name] for k in labels})
            doc = self._help.get(name, name.replace("_", " "))
            if name in self._gauges:
                fam = GaugeMetricFamily(name, doc, labels=label_names)
            else:
                fam = CounterMetricFamily(name, doc, labels=label_names)
            for labels, value in grouped[name]:
                fam.add_metric([labels.get(k, "") for k in label_names], float(value))
            families[name] = fam
        yield from families.values()


def serve_metrics(
    port: int | None,
    counters: Callable[[], Mapping[str, int]],
    *,
    gauges: Iterable[str] = (),
    help_text: Mapping[str, str] | None = None,
) -> MetricsEndpoint | None:
    """A :class:`MetricsEndpoint` on ``port`` reading ``counters`` on the running loop
    (the loop owns the counters; scrapes come from the endpoint's thread); None if no port."""
    if port is None:
        return None
    reader = read_in_loop(asyncio.get_running_loop(), counters)
    return MetricsEndpoint(port, reader, gauges=gauges, help_text=help_text)


def read_in_loop(
    loop: asyncio.AbstractEventLoop, fn: Callable[[], Mapping[str, int]], timeout_s: float = 5.0
) -> Callable[[], Mapping[str, int]]:
    """A thread-safe reader for the metrics thread: runs ``fn`` on ``loop`` and waits."""

    def read() -> Mapping[str, int]:
        async def call() -> Mapping[str, int]:
            return dict(fn())

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout_s)

    return read


class MetricsEndpoint:
    """Prometheus text endpoint on ``host:port`` (0 = ephemeral) in a daemon thread."""

    def __init__(
        self,
        port: int,
        source: Callable[[], Mapping[str, int]],
        *,
        gauges: Iterable[str] = (),
        help_text: Mapping[str, str] | None = None,
        host: str = "0.0.0.0",
    ) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_CountersCollector(source, frozenset(gauges), help_text or {}))
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise UserError(f"--metrics-port: cannot listen on {host}:{port}: {exc}") from None
        self.port: int = self._httpd.server_address[1]
        log.info(kv("metrics_started", port=self.port))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
