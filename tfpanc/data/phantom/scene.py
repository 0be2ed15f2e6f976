"""The canvas the anatomy is painted on: a tissue-id map plus texture layers.

Organs are painted one after another; a later organ overwrites an earlier
one only where ``over`` allows it (e.g. a bowel loop only displaces
visceral fat), which is how organs are kept from cutting through each other
without computing their intersections.
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.phantom.fields import Grid
from tfpanc.data.phantom.tissues import Tissue, mask_table


class Scene:
    """A tissue map on ``grid`` and the texture layers to add on top.

    Args:
        grid: the :class:`~tfpanc.data.phantom.fields.Grid` to draw on.
        detail: False for the coarse planning pass (no small vessels,
            textures or bowel contents), True for the final image.

    Example:
    >>> g = Grid.covering([0, 0, 0], [10, 10, 10], (5, 5, 5))
    >>> s = Scene(g); b = g.full_box()
    >>> s.paint(b, np.ones(b.shape, bool), Tissue.LIVER)
    >>> int((s.tissue == Tissue.LIVER).sum())
    125
    """

    def __init__(self, grid: Grid, detail=True):
        self.grid = grid
        self.detail = detail
        self.tissue = np.zeros(grid.shape, np.uint8)
        self.textures = []

    def box(self, lo, hi):
        return self.grid.box(lo, hi)

    def paint(self, box, mask, tissue, over=None):
        """Sets ``tissue`` where ``mask`` (on ``box``) is True.

        Args:
            box: the :class:`~tfpanc.data.phantom.fields.Box` ``mask`` covers.
            mask: boolean array of ``box.shape`` (or broadcastable to it).
            tissue: a :class:`Tissue`.
            over: if given, only voxels currently holding one of these
                tissues are painted.
        """
        if box.empty:
            return
        view = self.tissue[box.slices]
        mask = np.broadcast_to(mask, box.shape)
        if over is not None:
            over = [int(t) for t in over]
            if len(over) <= 3:  # comparisons beat a table lookup for a few tissues
                allowed = view == over[0]
                for t in over[1:]:
                    allowed |= view == t
            else:
                allowed = mask_table(over)[view]
            mask = mask & allowed
        np.putmask(view, mask, np.uint8(tissue))

    def current(self, box):
        return self.tissue[box.slices]

    def add_texture(self, box, tissues, field):
        """Adds ``field`` (relative units, scaled per modality later) to ``tissues`` in ``box``."""
        if not box.empty and self.detail:
            self.textures.append((box, tuple(int(t) for t in tissues), field.astype(np.float32)))
