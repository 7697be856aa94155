"""Former name of :mod:`tracklayer.fusion.core` (:class:`FusionCore`), kept so that
existing imports keep working; new code imports ``tracklayer.fusion.core``."""

from .core import *  # noqa: F403
