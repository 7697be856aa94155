"""The track store (``TrackStoreService``, the card's cloud-side consumer started by
``tracklayer consumer``): the thin gRPC servicer, the SQLite store of track reports, and
``run``: the store in the foreground of the command (serve until SIGTERM/SIGINT).

May import ``services.wire``, ``services.rpc``, ``services.errors``, ``services.limits``
and ``services.sqlite_db``; never the fusion service, clients or CLI.
"""
