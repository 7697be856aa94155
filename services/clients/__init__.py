"""gRPC clients of the tracklayer services: :class:`TracklayerClient` (the public client
for integration tests and tools, ``client.py``) and the one frame streamer that sensor
nodes, replay and that client use to send frames over resumable streams with
acknowledgements (``frame_streamer.py``, with ``sensor_stream.py``, ``stream_options.py``,
``thread_source.py``), fed by the frame sources of ``sources.py``.

May import ``tracklayer.fusion`` (domain types), ``tracklayer.sensors`` (the simulated
source), ``services.wire``, ``services.rpc`` (TLS credentials), ``services.errors`` and
``services.limits``; never a server or the CLI.
"""
