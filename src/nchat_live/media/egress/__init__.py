"""Playback to WebRTC viewers: WHEP sessions (whep.py) fed by one shared H.264 encode per stream (relay.py)."""
