"""Feed health: per-segment audio analysis, the per-feed state machine, the HTTP server."""
