"""The program of a stream with guest speakers: the host's and guests' decoded media composed into one
feed for the pipeline.

`layout.py` places sources on the canvas, `video.py` builds one frame from the latest frame of each,
`audio.py` mixes their audio, and `program.py` runs both on a thread at a fixed frame rate into a
`StreamPipeline`. Without guests nothing here runs: the host's frames go to the pipeline directly.
"""

from .layout import LAYOUTS, Rect, fit, place
from .program import HOST, ProgramCompositor

__all__ = ["HOST", "LAYOUTS", "ProgramCompositor", "Rect", "fit", "place"]
