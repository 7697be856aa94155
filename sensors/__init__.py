"""Scenario simulation: constellation, missiles, IR sensors (no gRPC, protobuf or MCAP)."""
