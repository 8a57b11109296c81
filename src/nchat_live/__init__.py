"""nchat-live: a live-streaming backend."""
