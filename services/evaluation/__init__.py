"""Evaluation outputs beyond the figures themselves (which are computed by
``tracklayer.fusion`` from reports and truth): plots, baselines to compare against, and
evaluating a recording end to end for ``tracklayer evaluate`` and the demo.

May import ``tracklayer.fusion``, ``services.wire`` and ``services.errors``; never
servers, clients or the CLI.
"""
