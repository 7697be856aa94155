"""Tracking core: a pure library (numpy/scipy/filterpy; no gRPC, protobuf or files).

Domain types that cross layers live in :mod:`tracklayer.fusion.domain`.
"""
