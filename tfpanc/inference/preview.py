"""A picture of one prediction: three slices through the pancreas with the mask's outline.

TotalSegmentator's ``--preview`` idea: a user sees at a glance whether a
result is plausible (the organ where the pancreas lies, a sensible size)
without opening a viewer. Axial, coronal and sagittal slices through the
mask's centre of mass (the volume's centre for an empty mask), the image in
the CT window [-100, 240] HU (an MR image between its 1st and 99th
percentiles), the outline drawn by matplotlib's contour, each panel at the
voxels' true aspect ratio, and the volume in mL in the title.
"""

from __future__ import annotations

import numpy as np

from tfpanc.result_files import save_figure

CT_WINDOW = (-100.0, 240.0)


def slice_centre(mask):
    """``(x, y, z)`` voxel of the mask's centre of mass, or the volume's centre when it is empty."""
    from scipy import ndimage

    if not np.any(mask):
        return tuple(s // 2 for s in mask.shape)
    return tuple(int(round(c)) for c in ndimage.center_of_mass(mask))


def radiological(plane):
    """A RAS+ ``[first, second]`` plane as shown on screen: the second axis up (anterior in an
    axial slice), the first reversed (the patient's right on the screen's left)."""
    return np.asarray(plane).T[::-1, ::-1]


def _panels(image, mask, spacing, centre):
    """(name, image slice, mask slice, aspect) per view, in radiological display.

    Arrays are RAS+ (x towards the patient's right, y anterior, z superior):
    rows are flipped so that anterior (axial) or superior (coronal,
    sagittal) is up, and columns so that the patient's right is on the
    screen's left (anterior on the left in the sagittal view).
    """
    x, y, z = centre
    sx, sy, sz = spacing
    show = radiological
    return [("axial", show(image[:, :, z]), show(mask[:, :, z]), sy / sx),
            ("coronal", show(image[:, y, :]), show(mask[:, y, :]), sz / sx),
            ("sagittal", show(image[x, :, :]), show(mask[x, :, :]), sz / sy)]


def write_preview(path, image, mask, spacing, modality="ct", title=""):
    """Writes the preview PNG (atomically).

    Args:
        path: the ``.png`` file.
        image: ``[x, y, z]`` input in RAS+ order (HU for CT).
        mask: ``[x, y, z]`` 0/1 prediction on the image's grid.
        spacing: voxel size in mm.
        modality: ``"ct"`` (fixed HU window) or ``"mri"`` (percentiles).
        title: the figure's title (the volume in mL is added).

    Example:
    >>> import tempfile, pathlib
    >>> img = np.full((32, 32, 16), -50.0); msk = np.zeros(img.shape, np.uint8); msk[10:20, 12:18, 5:9] = 1
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "p.png"
    >>> write_preview(out, img, msk, (1.0, 1.0, 2.5), title="case")
    >>> out.stat().st_size > 1000
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask = np.asarray(mask) > 0
    image = np.asarray(image, np.float32)
    lo, hi = CT_WINDOW if modality == "ct" else tuple(np.percentile(image, [1, 99]))
    ml = float(mask.sum()) * float(np.prod(spacing)) / 1000.0
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (name, img, msk, aspect) in zip(axes, _panels(image, mask, spacing, slice_centre(mask))):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
        if msk.any():
            ax.contour(msk.astype(np.float32), levels=[0.5], colors="red", linewidths=1.0)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(f"{title}  pancreas {ml:.1f} mL".strip())
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=80)
    finally:
        plt.close(fig)
