"""Scale-out on NATS JetStream (issue 14): the broker, the front door's stream journal,
the workers hosting shards under leases, and the report feed to the store.

Everything here is I/O (``services/``); the tracking itself is the unchanged
``tracklayer.fusion`` core, driven exactly as the journal replay drives it.
"""
