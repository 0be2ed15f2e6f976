"""Segmentation metrics: overlap, surface distances, boxes, summaries.

Conventions (details in each module):

* Masks are any arrays, converted to bool (nonzero = object); spacing is
  ``(sx, sy, sz)`` in mm per array axis of the ``[x, y, z]`` array.
* Overlap metrics (:mod:`.overlap`) are fractions; both masks empty -> 1,
  exactly one empty -> 0.
* Distances (:mod:`.surface`) are in mm; both empty -> 0, exactly one empty
  -> ``inf``. Summaries (:mod:`.summary`) leave non-finite values out and
  count them.
* ``avd`` is the average Hausdorff distance as ITK/SimpleITK and
  EvaluateSegmentation compute it (mean of the two directed averages over all
  object voxels); it matches the scale of Cai et al.'s AVD, whereas the
  surface-voxel version (``avd_surface``) is about 3-4 times larger on
  pancreas masks. Surface metrics (``hd``, ``hd95``, ``assd``) use surface
  voxels.
"""

from tfpanc.metrics.overlap import (
    box_iou,
    box_recall,
    dice,
    dsc,
    jaccard,
    precision,
    recall,
    volume_ml,
)
from tfpanc.metrics.summary import (
    DEFAULT_METRICS,
    METRICS,
    all_metrics,
    format_stat,
    format_table,
    summarize,
)
from tfpanc.metrics.surface import (
    abnormal_shape_changes,
    assd,
    avd,
    avd_surface,
    distance_summary,
    hausdorff,
    hd95,
    mean_slice_avd,
    slice_avd,
    surface_distances,
    surface_mask,
    union_crop,
    voxel_distances,
)

__all__ = [
    "DEFAULT_METRICS", "METRICS", "abnormal_shape_changes", "all_metrics", "assd", "avd",
    "avd_surface", "box_iou", "box_recall", "dice", "distance_summary", "dsc",
    "format_stat", "format_table", "hausdorff", "hd95", "jaccard", "mean_slice_avd", "precision", "recall",
    "slice_avd", "summarize", "surface_distances", "surface_mask", "union_crop",
    "volume_ml", "voxel_distances",
]
