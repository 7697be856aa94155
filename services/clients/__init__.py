"""gRPC clients of the tracklayer services: :class:`TracklayerClient` (the public client
for integration tests and tools) and the frame streamer that sensor nodes and replay use
to send frames over resumable streams with acknowledgements.

May import ``tracklayer.fusion`` (domain types), ``services.wire``, ``services.rpc``
(TLS credentials), ``services.errors`` and ``services.limits``; never a server or the CLI.
"""
