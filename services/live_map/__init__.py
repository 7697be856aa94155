"""The live map: a web page of the track store's live picture (``consumer --http``).

``server`` runs aiohttp on the store's event loop and pushes binary messages to each page
over a WebSocket,
``picture`` keeps what the page shows (tracks, trails, sensors, rates), ``view`` is the
one report -> JSON conversion, ``static/`` holds the page, its script and the Natural
Earth land outlines (with their licence).
"""
