"""Former home of :class:`TracklayerClient`, kept as a public import path
(``from tracklayer.services.client import TracklayerClient``); the code lives in
:mod:`tracklayer.services.clients.client`."""

from tracklayer.services.clients.client import *  # noqa: F403
from tracklayer.services.clients.client import TracklayerClient  # noqa: F401
