"""Undecodable requests answered ``INVALID_ARGUMENT`` instead of a logged traceback.

Left alone, grpc.aio answers a request whose bytes do not parse as the RPC's
message with ``UNKNOWN`` and logs a full ERROR traceback for every one, so a
client sending garbage fills the log. :func:`refuse_undecodable` (applied to
every tracklayer server's handlers by ``rpc.interceptors``) makes the
deserializer hand back a marker instead of raising, and the wrapped handler
ends that call with ``INVALID_ARGUMENT`` naming the expected message type.
A stream ends at its first undecodable message (what came before it was
processed and answered as usual).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

log = logging.getLogger("tracklayer.services.wire")


class _Undecodable:
    """Stands in for a request message that did not parse."""

    __slots__ = ("type_name", "error")

    def __init__(self, type_name: str, error: str) -> None:
        self.type_name, self.error = type_name, error

    def details(self) -> str:
        return f"request: not a valid {self.type_name} ({self.error})"


def _safe_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None
    owner = getattr(deserialize, "__self__", None)  # Msg.FromString is a bound classmethod
    type_name = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "message")

    def deserialize_or_mark(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, ValueError, RuntimeError) as exc:  # noqa: B014 - protobuf raises all
            return _Undecodable(type_name, str(exc).split(":")[-1].strip() or "wire format")

    return deserialize_or_mark


async def _refuse(bad: _Undecodable, context: grpc.aio.ServicerContext) -> None:
    log.warning("event=undecodable_request peer=%s type=%s", context.peer(), bad.type_name)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad.details())


async def _guard(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext):
    async for msg in requests:
        if isinstance(msg, _Undecodable):
            await _refuse(msg, context)
        yield msg


def refuse_undecodable(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` ending a call ``INVALID_ARGUMENT`` at its first undecodable request."""
    deser = _safe_deserializer(handler.request_deserializer)
    ser = handler.response_serializer
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary_unary(request, context):
            if isinstance(request, _Undecodable):
                await _refuse(request, context)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, deser, ser)
    if handler.unary_stream:
        inner = handler.unary_stream
        if inspect.isasyncgenfunction(inner):

            async def unary_stream(request, context):
                if isinstance(request, _Undecodable):
                    await _refuse(request, context)
                async for response in inner(request, context):
                    yield response

        else:  # a handler that writes with context.write()

            async def unary_stream(request, context):  # type: ignore[misc]
                if isinstance(request, _Undecodable):
                    await _refuse(request, context)
                return await inner(request, context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, deser, ser)
    if handler.stream_unary:
        inner = handler.stream_unary

        async def stream_unary(requests, context):
            return await inner(_guard(requests, context), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, deser, ser)
    inner = handler.stream_stream
    if inspect.isasyncgenfunction(inner):

        async def stream_stream(requests, context):
            async for response in inner(_guard(requests, context), context):
                yield response

    else:

        async def stream_stream(requests, context):  # type: ignore[misc]
            return await inner(_guard(requests, context), context)

    return grpc.stream_stream_rpc_method_handler(stream_stream, deser, ser)
