"""The wire formats: protobuf <-> domain conversion (``convert``: the one conversion
layer) and MCAP recordings (``recording``: writer, reader, the fixed topics and metadata).

May import ``tracklayer.fusion`` (domain types), ``tracklayer.v1`` (generated code),
``services.errors`` and ``services.limits``; never servers, clients or the CLI.
"""
