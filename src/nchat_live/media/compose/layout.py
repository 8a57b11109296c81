"""Where each source of the program goes on the output canvas.

Every coordinate and size is even, so a tile's chroma planes (4:2:0, half size) start and end on whole
samples and tiles never bleed into each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

LAYOUTS = ("solo", "side_by_side", "grid")


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int


def _even(value: float) -> int:
    return int(value) // 2 * 2


def _span(total: int, parts: int) -> list[tuple[int, int]]:
    """`total` cut into `parts` (start, length) pieces on even boundaries, with no gaps between them."""
    edges = [_even(total * i / parts) for i in range(parts)] + [total]
    return [(edges[i], edges[i + 1] - edges[i]) for i in range(parts)]


def place(layout: str, sources: Sequence[str], focus: str | None, width: int, height: int) -> list[tuple[str, Rect]]:
    """The cell of each shown source, in `sources` order.

    solo: the focused source full-frame (the first source, the host, when `focus` is None or not among
    `sources`). side_by_side: every source in one row of equal cells. grid: the smallest square-ish grid
    (columns = ceil(sqrt(n))), rows filled left to right, a short last row centred.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout '{layout}' is not one of {', '.join(LAYOUTS)}")
    if not sources:
        return []
    whole = Rect(0, 0, width, height)
    if layout == "solo" or len(sources) == 1:
        shown = focus if focus is not None and focus in sources else sources[0]
        return [(shown, whole)]
    if layout == "side_by_side":
        return [(source, Rect(x, 0, w, height)) for source, (x, w) in zip(sources, _span(width, len(sources)),
                                                                            strict=True)]
    columns = math.ceil(math.sqrt(len(sources)))
    rows = math.ceil(len(sources) / columns)
    cells: list[tuple[str, Rect]] = []
    cell_width = _even(width / columns)
    for row, (y, h) in enumerate(_span(height, rows)):
        members = sources[row * columns:(row + 1) * columns]
        if len(members) == columns:
            spans = _span(width, columns)
        else:
            left = _even((width - cell_width * len(members)) / 2)
            spans = [(left + i * cell_width, cell_width) for i in range(len(members))]
        cells.extend((source, Rect(x, y, w, h)) for source, (x, w) in zip(members, spans, strict=True))
    return cells


def fit(source_width: int, source_height: int, cell: Rect) -> Rect:
    """The largest rectangle of the source's aspect inside `cell`, centred (letterbox or pillarbox)."""
    if source_width <= 0 or source_height <= 0:
        return cell
    scale = min(cell.width / source_width, cell.height / source_height)
    width = min(cell.width, max(2, _even(source_width * scale + 1)))
    height = min(cell.height, max(2, _even(source_height * scale + 1)))
    return Rect(cell.x + _even((cell.width - width) / 2), cell.y + _even((cell.height - height) / 2), width, height)
