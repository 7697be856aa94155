"""Service errors to gRPC status codes: the one table, applied by one interceptor.

Servicers raise a :class:`~tracklayer.services.errors.ServiceError` subclass (or
:class:`~tracklayer.services.rpc.broadcast.SubscriberTooSlow`) instead of calling
``context.abort``; :func:`answer_service_errors` wraps every RPC handler so that such
an error ends the call with the code :data:`STATUS_CODES` gives its class and the
error's message as the details. Any other exception is left to grpc (``UNKNOWN``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import grpc

from tracklayer.services.errors import (
    Aborted,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)

#: Error class -> status code; the first class in this order the error is an instance of.
STATUS_CODES: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Aborted: grpc.StatusCode.ABORTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: ServiceError) -> grpc.StatusCode:
    """The status code :data:`STATUS_CODES` gives ``error`` (``UNKNOWN`` if none)."""
    for cls, code in STATUS_CODES.items():
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.UNKNOWN


def _answering(behaviour: Callable[..., Any]) -> Callable[..., Any]:
    """``behaviour`` (one RPC's handler function) with service errors ending the call."""
    if inspect.isasyncgenfunction(behaviour):

        async def streaming(request_or_iterator: Any, context: grpc.aio.ServicerContext):
            try:
                async for response in behaviour(request_or_iterator, context):
                    yield response
            except ServiceError as exc:
                await context.abort(status_code(exc), str(exc))

        return streaming

    async def single(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(request_or_iterator, context)
        except ServiceError as exc:
            await context.abort(status_code(exc), str(exc))

    return single


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def answer_service_errors(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` with each of its behaviours answering service errors with a status."""
    make = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    for kind in _KINDS:
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            return make[kind](
                _answering(behaviour), handler.request_deserializer, handler.response_serializer
            )
    return handler
