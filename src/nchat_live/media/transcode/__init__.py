"""The per-stream transcoding pipeline and its rendition ladder."""
