"""The fusion service (``FusionService``): the thin gRPC servicer (``servicer``, with one
``frame_stream`` per StreamFrames call), the engine that runs
:class:`tracklayer.fusion.core.FusionCore` over live streams (``engine``: the worker and
group commit; ``inputs``: applying one input; ``recovery``: checkpoints and journal
replay; ``live_picture``; ``settings``; ``metrics``), its SQLite journal and outbox, the
forwarder that delivers reports to the track store, the session recorder, and ``run``:
the service in the foreground of ``tracklayer fusion`` (serve until SIGTERM/SIGINT).

May import ``tracklayer.fusion``, ``services.wire``, ``services.rpc``, ``services.errors``,
``services.limits`` and ``services.sqlite_db``; never the store service, clients or CLI.
"""
