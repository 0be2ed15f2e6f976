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
from pathlib import Path

import nibabel as nib
import numpy as np

from tfpanc.errors import InputError
from tfpanc.result_files import write_with

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


def _slice_position(path, reader):
    """Distance (mm) of one DICOM slice along its normal, from its header alone."""
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    try:
        position = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
        cosines = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
    except RuntimeError:
        raise InputError(path, "DICOM slice has no Image Position / Orientation (Patient)") from None
    except ValueError:
        raise InputError(path, "DICOM slice has an unreadable Image Position / Orientation (Patient)") from None
    if len(position) != 3 or len(cosines) != 6:
        raise InputError(path, "DICOM slice has an unreadable Image Position / Orientation (Patient)")
    return float(np.dot(position, np.cross(cosines[:3], cosines[3:])))


def check_slice_positions(files):
    """Refuses a series with repeated or unequally spaced slices (a missing or unreadable slice).

    GDCM leaves a slice it cannot read out of the series without a word, and
    SimpleITK then stacks the rest at the first gap's spacing: the volume
    would have a slice fewer and a wrong grid. Slices are equally spaced
    when every gap is within 1 % (and 0.01 mm) of the median gap.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    positions = np.array([_slice_position(f, reader) for f in files])
    gaps = np.diff(positions)
    if gaps.size and np.median(gaps) < 0:  # GDCM may sort either way along the normal
        gaps = -gaps
    step = float(np.median(np.abs(gaps))) if gaps.size else 0.0
    for i, gap in enumerate(gaps):
        if abs(gap) < 1e-3:
            raise InputError(files[i + 1], f"DICOM slice at the same position as {Path(files[i]).name}: "
                             "two slices in one place (mixed series?)")
        if abs(gap - step) > max(0.01 * step, 0.01):
            raise InputError(files[i + 1], f"DICOM slice positions are unequal: {gap:.2f} mm after "
                             f"{Path(files[i]).name}, {step:.2f} mm elsewhere (a missing or unreadable slice?)")


def _read_dicom_series(path, series_uid=None):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(path))
    if not series:
        raise InputError(path, "folder holds no DICOM series")
    files_of = {uid: reader.GetGDCMSeriesFileNames(str(path), uid) for uid in series}
    if series_uid is not None:
        if series_uid not in files_of:
            raise InputError("--series_uid", f"{series_uid} is not a series of {path} "
                             f"(it holds {', '.join(sorted(files_of))})")
        files = files_of[series_uid]
    else:
        # A folder may hold a localizer next to the axial series: take the largest, if it is one.
        most = max(len(f) for f in files_of.values())
        largest = sorted(uid for uid, f in files_of.items() if len(f) == most)
        if len(largest) > 1:
            raise InputError(path, f"holds {len(largest)} DICOM series of {most} slices ({', '.join(largest)}); "
                             "choose one with --series_uid")
        files = files_of[largest[0]]
    if len(files) < 2:
        raise InputError(path, "DICOM series has a single slice; a 3D series is needed")
    check_slice_positions(files)
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


def check_finite(array, path):
    """Refuses an image with NaN or infinite voxels, naming the file, the count and the first one.

    One NaN voxel spreads through every convolution it touches (a single
    one made a fifth of a volume's probabilities NaN), so it is an error,
    never silently used or replaced.
    """
    if np.issubdtype(array.dtype, np.integer):
        return
    bad = ~np.isfinite(array)
    count = int(np.count_nonzero(bad))
    if count:
        first = [int(v) for v in np.argwhere(bad)[0]]
        raise InputError(path, f"{count} voxel{'s are' if count > 1 else ' is'} not finite (NaN or inf), "
                         f"the first at [x, y, z] = {first}; fix or mask them in the file")


def load_volume(path, reader="auto", series_uid=None):
    """Reads a volume into the canonical convention.

    Args:
        path: a ``.nii``/``.nii.gz`` file, a DICOM series folder, or a file
            SimpleITK reads (``.mha``, ``.mhd``, ``.nrrd``).
        reader: ``"auto"``, ``"nibabel"`` or ``"sitk"``.
        series_uid: for a DICOM folder holding several series, the one to read
            (default: the largest; two of the largest size are refused).

    Returns:
        A :class:`Volume`; CT in whole HU comes back as int16, other data as
        float32 (NIfTI scaling applied).

    Raises:
        InputError: naming the path and what is wrong with it: unreadable,
            not 3D, a degenerate grid, NaN or infinite voxels
            (:func:`check_finite`), a DICOM series with a missing, repeated or
            unequally spaced slice (:func:`check_slice_positions`) or an
            ambiguous choice of series.

    Example:
    >>> vol = load_volume("ct.nii.gz")          # doctest: +SKIP
    >>> axial = vol.array[:, :, 10]; vol.spacing  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        array, affine = _read_dicom_series(path, series_uid)
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
    check_finite(volume.array, path)
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
    if not is_nifti(path) and suffix.lower() not in SITK_SUFFIXES:
        raise InputError(path, f"unsupported output format '{suffix}' (use .nii.gz, .nii, .mha or .nrrd)")

    def write(tmp):
        if is_nifti(path):
            img = nib.Nifti1Image(data, geometry.source_affine)
            img.header.set_xyzt_units("mm")
            img.set_qform(geometry.source_affine, code=1)
            img.set_sform(geometry.source_affine, code=1)
            nib.save(img, tmp)
        else:
            _write_sitk(data, geometry.source_affine, tmp)

    write_with(path, write, suffix)


def _write_sitk(data, affine, path):
    import SimpleITK as sitk

    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = _LPS_TO_RAS @ affine[:3, :3] / spacing
    image = sitk.GetImageFromArray(data.transpose(2, 1, 0))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in direction.ravel()])
    image.SetOrigin([float(v) for v in _LPS_TO_RAS @ affine[:3, 3]])
    sitk.WriteImage(image, str(path), True)
