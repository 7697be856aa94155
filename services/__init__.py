"""Everything in tracklayer that does I/O: gRPC servers and clients, protobuf, MCAP,
SQLite, processes and the command line (DESIGN §1; map in docs/architecture.md).

Subpackages by job: ``wire`` (protobuf conversion, MCAP), ``rpc`` (what every server
shares), ``fusion_service``, ``store_service``, ``clients``, ``evaluation``, ``ops``
(demo, processes, certificates) and ``cli``; top-level modules hold what they all use
(``errors``, ``limits``, ``sqlite_db``), the offline tracking loop (``offline``) and
the pytest plugin (``testing``). Imports point from ``cli`` and ``ops`` down to the
services, clients and ``wire``, never back up; ``tracklayer.fusion`` and
``tracklayer.sensors`` never import ``services``.
"""
