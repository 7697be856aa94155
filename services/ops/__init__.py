"""Running tracklayer as processes: the demo, child-process supervision (start, find the
bound address, stop, end with the parent) and development certificates.

May import every other part of ``services/`` except the CLI; children are started as
``python -m tracklayer.services.cli``.
"""
