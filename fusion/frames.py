"""Former name of :mod:`tracklayer.fusion.geodesy` (coordinate frames), kept so that
existing imports keep working; new code imports ``tracklayer.fusion.geodesy``."""

from .geodesy import *  # noqa: F403
