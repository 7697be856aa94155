"""Generated protobuf and gRPC code for the tracklayer.v1 wire contract (`make proto`)."""
