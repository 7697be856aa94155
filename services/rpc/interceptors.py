"""The one server interceptor every tracklayer server installs.

:class:`HandlerInterceptor` applies handler transforms once per served method and
caches the result: ``wire_guard.refuse_undecodable`` (undecodable requests end the
call ``INVALID_ARGUMENT``) and ``status.answer_service_errors`` (a servicer's
``ServiceError`` ends the call with its status code).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from tracklayer.services.rpc.status import answer_service_errors
from tracklayer.services.rpc.wire_guard import refuse_undecodable

HandlerTransform = Callable[[grpc.RpcMethodHandler], grpc.RpcMethodHandler]

#: Most methods whose wrapped handler is cached (the methods served; unknown names are not).
_MAX_CACHED = 256


class HandlerInterceptor(grpc.aio.ServerInterceptor):
    """Server interceptor applying ``transforms`` (in order) to each method's handler."""

    def __init__(self, *transforms: HandlerTransform) -> None:
        self._transforms = transforms
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method in self._cache:
            return self._cache[method]
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        for transform in self._transforms:
            handler = transform(handler)
        if len(self._cache) < _MAX_CACHED:
            self._cache[method] = handler
        return handler


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The interceptors of every tracklayer server (fresh ones: each caches its handlers)."""
    return [HandlerInterceptor(refuse_undecodable, answer_service_errors)]
