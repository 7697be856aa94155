"""All I/O: gRPC services, protobuf conversion, MCAP recordings, SQLite, the CLI."""
