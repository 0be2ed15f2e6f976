"""What a label file may hold, and the pancreas mask made of it.

A label is a small set of whole numbers (MSD Task07: 0 background, 1
pancreas, 2 tumour). A file with fractions (a probability map), negative
values, values above 255 or more than 16 distinct values is an image, not a
label; a label whose nonzero values are none of ``--label_values`` would
silently become an empty case (DSC 0). Both are refused, naming the file.
"""

from __future__ import annotations

import numpy as np

from tfpanc.errors import InputError

MAX_LABEL_VALUES = 16


def label_mask(array, path, label_values=None, flag="--label_values"):
    """The pancreas mask of a label array, or a one-line InputError naming ``path``.

    Args:
        array: the label volume.
        path: its file, for messages.
        label_values: values that count as pancreas; empty/None = any nonzero.
        flag: the flag ``label_values`` came from, for messages.

    Returns:
        a boolean array of the same shape.

    Example:
    >>> label_mask(np.array([0, 1, 2, 1]), "l.nii.gz", [1]).tolist()
    [False, True, False, True]
    >>> label_mask(np.array([0, 2, 2]), "l.nii.gz", [1])
    Traceback (most recent call last):
    tfpanc.errors.InputError: error: l.nii.gz: holds the values [2] but none of --label_values [1]
    """
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise InputError(path, "holds non-integer values (a probability map or an image?); a label mask "
                             "is needed")
    low, high = (array.min(), array.max()) if array.size else (0, 0)
    if low < 0 or high > 255:
        raise InputError(path, f"holds values from {low:g} to {high:g}: an image, not a label mask")
    # Values are 0..255 here: mark them in a 256-entry table (one byte per voxel at most is copied,
    # where np.unique would sort the volume and np.bincount widen it to 8 bytes a voxel).
    present = np.zeros(256, bool)
    present[array.astype(np.uint8, copy=False).ravel()] = True
    values = np.flatnonzero(present)
    if values.size > MAX_LABEL_VALUES:
        raise InputError(path, f"holds {values.size} distinct values: an image, not a label mask")
    if not label_values:
        return array != 0
    wanted = [int(v) for v in label_values]
    nonzero = [int(v) for v in values if v != 0]
    if nonzero and not set(nonzero) & set(wanted):
        raise InputError(path, f"holds the values {nonzero} but none of {flag} {wanted}")
    return np.isin(array, wanted)
