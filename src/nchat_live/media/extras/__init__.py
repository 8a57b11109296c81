"""Optional parts attached to the media worker from outside: recording, DVR, thumbnails, clips, quality metrics."""
