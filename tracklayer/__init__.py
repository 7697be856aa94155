"""tracklayer: missile-tracking sensor fusion for a LEO infrared constellation.

Subpackages: ``tracklayer.fusion`` (tracking core), ``tracklayer.sensors``
(simulation), ``tracklayer.services`` (gRPC, MCAP, SQLite, CLI) and
``tracklayer.v1`` (generated wire contract).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tracklayer")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
