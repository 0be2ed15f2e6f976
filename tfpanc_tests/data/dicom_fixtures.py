"""Small DICOM series written with SimpleITK, for the reader's checks."""

import contextlib
import locale

import numpy as np


@contextlib.contextmanager
def _kept_locale():
    # GDCM's DICOM writer sets the process's LC_CTYPE to "C" and leaves it: every later
    # text-mode file or subprocess in the test session would then be ASCII.
    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)


def write_series(folder, volume_zyx, spacing=(0.8, 0.8, 2.5), series_uid="1.2.826.0.1.3680043.2.1125.1",
                 positions=None, skip=(), prefix="slice"):
    """Writes ``volume_zyx`` (int16, [z, y, x]) as one axial CT series; returns the file paths.

    Args:
        positions: z position (mm) per slice (default ``k * spacing[2]``); give
            unequal or repeated ones to build a broken series.
        skip: slice indices not written (a missing slice).
    """
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(volume_zyx.shape[0]):
        if k in skip:
            continue
        z = k * spacing[2] if positions is None else positions[k]
        image = sitk.GetImageFromArray(volume_zyx[k:k + 1].astype(np.int16))
        image.SetSpacing((spacing[0], spacing[1], spacing[2]))
        tags = {"0008|0060": "CT", "0020|000d": "1.2.826.0.1.3680043.2.1125.9", "0020|000e": series_uid,
                "0020|0013": str(k + 1), "0020|0032": f"0\\0\\{z}", "0020|0037": "1\\0\\0\\0\\1\\0",
                "0028|0030": f"{spacing[1]}\\{spacing[0]}", "0018|0050": str(spacing[2]),
                "0008|0018": f"{series_uid}.{k + 1}"}
        for key, value in tags.items():
            image.SetMetaData(key, value)
        path = folder / f"{prefix}_{k:03d}.dcm"
        writer.SetFileName(str(path))
        with _kept_locale():
            writer.Execute(image)
        paths.append(path)
    return paths
