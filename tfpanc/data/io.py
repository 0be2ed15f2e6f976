"""Reading CT/MRI volumes into one convention, and writing results back.

The in-memory convention, used everywhere after IO:

* ``Volume.array`` is indexed ``[x, y, z]`` in nibabel's closest-canonical
  RAS+ order: the index increases towards the patient's Right (axis 0),
  Anterior (axis 1) and Superior (axis 2). An axial
  slice is ``array[:, :, k]``, a coronal one ``array[:, j, :]``, a sagittal
  one ``array[i, :, :]``.
* ``Volume.geometry.affine`` maps ``(i, j, k, 1)`` of that array to world RAS
  millimetres (nibabel's convention; ITK/DICOM's LPS is converted on read).
* ``Volume.spacing`` is the voxel size in mm along the three array axes.
* The geometry also remembers the file's own voxel order
  (``source_affine``, ``source_shape``) so that :func:`save_volume` writes a
  mask or probability map on exactly the source grid: it overlays the input in
  3D Slicer or ITK-SNAP, including for DICOM inputs written as NIfTI.

Reading only flips and permutes axes (no resampling), so the round trip is
exact. NIfTI goes through nibabel; DICOM series folders and the other formats
SimpleITK reads (.mha, .mhd, .nrrd, .nii too if asked) go through SimpleITK.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from tfpanc.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
# DICOM/ITK use LPS world coordinates, NIfTI/nibabel RAS: flip x and y.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Where a canonical array sits in the world, and how the file held it.

    Args:
        affine: 4x4 voxel-to-world (RAS, mm) matrix of the canonical array.
        source_affine: 4x4 voxel-to-world matrix of the array as stored in
            the source file.
        source_shape: the array shape as stored in the source file.
    """

    affine: np.ndarray
    source_affine: np.ndarray
    source_shape: tuple

    @property
    def spacing(self):
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def shape(self):
        """Shape of the canonical array."""
        ornt = nib.orientations.io_orientation(self.source_affine)
        return tuple(int(self.source_shape[int(ax)]) for ax in _inverse_axes(ornt))

    def to_json(self):
        return {
            "affine": np.asarray(self.affine, float).tolist(),
            "source_affine": np.asarray(self.source_affine, float).tolist(),
            "source_shape": [int(s) for s in self.source_shape],
        }

    @classmethod
    def from_json(cls, d):
        return cls(
            affine=np.asarray(d["affine"], float),
            source_affine=np.asarray(d["source_affine"], float),
            source_shape=tuple(int(s) for s in d["source_shape"]),
        )

    @classmethod
    def from_spacing(cls, shape, spacing, origin=(0.0, 0.0, 0.0)):
        """An axis-aligned RAS geometry, as made for synthetic volumes."""
        affine = np.eye(4)
        affine[:3, :3] = np.diag([float(s) for s in spacing])
        affine[:3, 3] = origin
        return cls(affine=affine, source_affine=affine.copy(), source_shape=tuple(shape))

    def same_grid(self, other, atol=1e-3):
        """True when two geometries describe the same voxel grid."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)


@dataclasses.dataclass
class Volume:
    """A 3D image or mask in tfpanc's canonical convention (module docstring).

    Args:
        array: ``[x, y, z]`` voxel data, RAS+ order.
        geometry: a :class:`Geometry`.
    """

    array: np.ndarray
    geometry: Geometry

    @property
    def spacing(self):
        return self.geometry.spacing


def _inverse_axes(ornt):
    # ornt[i, 0] is the canonical axis that source axis i becomes.
    order = np.empty(len(ornt), int)
    order[ornt[:, 0].astype(int)] = np.arange(len(ornt))
    return order


def _canonical(array, affine, path):
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(path, f"expected a 3D volume, got an array of shape {tuple(array.shape)}")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(path, "the voxel-to-world matrix is degenerate (zero spacing or NaN)")
    ornt = nib.orientations.io_orientation(affine)
    canonical = nib.orientations.apply_orientation(array, ornt)
    new_affine = affine @ nib.orientations.inv_ornt_aff(ornt, array.shape)
    geometry = Geometry(affine=new_affine, source_affine=np.asarray(affine, float),
                        source_shape=tuple(array.shape))
    return Volume(np.ascontiguousarray(canonical), geometry)


def _compact_dtype(array):
    """int16 when the values are whole numbers in range (CT HU), else float32."""
    if np.issubdtype(array.dtype, np.integer):
        if array.min(initial=0) >= -32768 and array.max(initial=0) <= 32767:
            return array.astype(np.int16, copy=False)
        return array.astype(np.float32)
    array = array.astype(np.float32, copy=False)
    if np.all(np.isfinite(array)) and np.array_equal(array, np.round(array)) and \
            array.min(initial=0) >= -32768 and array.max(initial=0) <= 32767:
        return array.astype(np.int16)
    return array


def _sitk_to_ras(image):
    import SimpleITK as sitk

    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("expected one value per voxel (not RGB/vector data)")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (z, y, x) -> (x, y, z)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = _LPS_TO_RAS @ np.asarray(image.GetOrigin(), float)
    return array, affine


def _read_dicom_series(path):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(path))
    if not series:
        raise InputError(path, "folder holds no DICOM series")
    # A folder may hold a localizer next to the axial series: take the largest.
    files = max((reader.GetGDCMSeriesFileNames(str(path), s) for s in series), key=len)
    if len(files) < 2:
        raise InputError(path, "DICOM series has a single slice; a 3D series is needed")
    reader.SetFileNames(files)
    try:
        return _sitk_to_ras(reader.Execute())
    except (RuntimeError, ValueError) as e:
        raise InputError(path, f"cannot read DICOM series: {_first_line(e)}") from None


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[-1].strip() if text else type(e).__name__


def is_nifti(path):
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def load_volume(path, reader="auto"):
    """Reads a volume into the canonical convention.

    Args:
        path: a ``.nii``/``.nii.gz`` file, a DICOM series folder, or a file
            SimpleITK reads (``.mha``, ``.mhd``, ``.nrrd``).
        reader: ``"auto"``, ``"nibabel"`` or ``"sitk"``.

    Returns:
        A :class:`Volume`; CT in whole HU comes back as int16, other data as
        float32 (NIfTI scaling applied).

    Raises:
        InputError: naming the path and what is wrong with it.

    Example:
    >>> vol = load_volume("ct.nii.gz")          # doctest: +SKIP
    >>> axial = vol.array[:, :, 10]; vol.spacing  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        array, affine = _read_dicom_series(path)
    elif reader == "nibabel" or (reader == "auto" and is_nifti(path)):
        try:
            img = nib.load(str(path))
            array = np.asanyarray(img.dataobj)
            affine = img.affine
        except Exception as e:  # nibabel raises several types for corrupt files
            raise InputError(path, f"cannot read NIfTI: {_first_line(e)}") from None
        if affine is None:
            raise InputError(path, "NIfTI header has no voxel-to-world matrix")
    else:
        import SimpleITK as sitk

        try:
            array, affine = _sitk_to_ras(sitk.ReadImage(str(path)))
        except (RuntimeError, ValueError) as e:
            raise InputError(path, f"cannot read image: {_first_line(e)}") from None
    volume = _canonical(np.asarray(array), np.asarray(affine, float), path)
    volume.array = _compact_dtype(volume.array)
    return volume


def to_source_order(array, geometry):
    """Puts a canonical array back in the source file's voxel order."""
    ornt = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(geometry.affine),
        nib.orientations.io_orientation(geometry.source_affine))
    return nib.orientations.apply_orientation(array, ornt)


def save_volume(array, geometry, path):
    """Writes a canonical array on its source grid, atomically.

    Args:
        array: ``[x, y, z]`` canonical array with ``geometry``'s shape.
        geometry: the :class:`Geometry` of the volume it was computed from.
        path: output file; ``.nii``/``.nii.gz`` via nibabel, ``.mha``/``.nrrd``
            via SimpleITK. Parent folders are created. The file appears only
            once complete (written to a temporary name, then renamed).
    """
    path = Path(path)
    array = np.asarray(array)
    if array.shape != geometry.shape:
        raise ValueError(f"array shape {array.shape} does not match geometry {geometry.shape}")
    data = np.ascontiguousarray(to_source_order(array, geometry))
    if data.dtype == bool:
        data = data.astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        if is_nifti(path):
            img = nib.Nifti1Image(data, geometry.source_affine)
            img.header.set_xyzt_units("mm")
            img.set_qform(geometry.source_affine, code=1)
            img.set_sform(geometry.source_affine, code=1)
            nib.save(img, tmp)
        elif suffix.lower() in SITK_SUFFIXES:
            _write_sitk(data, geometry.source_affine, tmp)
        else:
            raise InputError(path, f"unsupported output format '{suffix}' (use .nii.gz, .nii, .mha or .nrrd)")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_sitk(data, affine, path):
    import SimpleITK as sitk

    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = _LPS_TO_RAS @ affine[:3, :3] / spacing
    image = sitk.GetImageFromArray(data.transpose(2, 1, 0))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in direction.ravel()])
    image.SetOrigin([float(v) for v in _LPS_TO_RAS @ affine[:3, 3]])
    sitk.WriteImage(image, str(path), True)
