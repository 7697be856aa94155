"""Errors shared by every layer of ``services/``: the user's and the services'.

Servers, clients and commands raise :class:`UserError` for a bad file, a bad flag or
an unreachable peer; the command line prints it as one line with exit status 2 (no
traceback). Defined here, not in the CLI, so that servers never import the CLI.

A servicer refuses a request by raising a :class:`ServiceError` subclass; the message
is the status details the client reads ("field: why"), and ``services.rpc.status``
holds the one table from these classes to gRPC status codes.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2, no traceback."""


class ServiceError(Exception):
    """A call a service refuses or cannot serve; the message is the status details."""


class InvalidArgument(ServiceError):
    """The request names something malformed (an empty id, a field over its limit)."""


class NotFound(ServiceError):
    """The request names something the service does not hold."""


class PermissionDenied(ServiceError):
    """The client certificate's identity does not allow the request (mutual TLS)."""


class ResourceExhausted(ServiceError):
    """The call asks for more than a limit allows, or its reader fell too far behind."""


class Aborted(ServiceError):
    """The call was superseded (a newer stream of the same sensor replaced it)."""


class Unavailable(ServiceError):
    """The service is shutting down or has failed; a client may retry elsewhere or later."""
