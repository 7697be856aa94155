"""What every gRPC server of tracklayer shares: server start and shutdown, TLS and
mutual-TLS identities, interceptors (undecodable requests, errors to status codes),
live report fan-out to subscribers, logging and Prometheus metrics, and a started
server in the foreground of a command (``foreground``: announce, wait for a signal, stop).

May import ``services.wire``, ``services.errors`` and ``services.limits``; never a
particular service, the clients or the CLI.
"""
