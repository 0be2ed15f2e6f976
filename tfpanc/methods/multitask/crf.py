"""The 3D fully connected CRF that refines the multitask FCN's probability.

Paper: "Cascaded MultiTask 3-D Fully Convolutional Networks for Pancreas
Segmentation", Sec. II-C, Eqs. 5-11. The energy over voxel labels S is

* unary (Eq. 6): ``psi_u(S_i) = -log P(S_i | I)``, P the network's softmax;
* pairwise (Eqs. 7-9): Potts compatibility ``mu(S_i, S_j) = [S_i != S_j]``
  times ``w1 * exp(-sum_d |p_i,d - p_j,d|^2 / (2 sigma_alpha,d^2))``
  (smoothness kernel) plus ``w2 * exp(-sum_d |p_i,d - p_j,d|^2 /
  (2 sigma_beta,d^2) - |I_i - I_j|^2 / (2 sigma_gamma^2))`` (appearance
  kernel), p the voxel position and I its intensity;
* mean-field inference (Eqs. 10-11), Kraehenbuehl and Koltun's
  permutohedral-lattice filtering, as pydensecrf2's general N-D
  ``DenseCRF`` does it. No CRF code is written here.

Readings of the paper (it gives no parameter values):

* The defaults of :class:`CRFSettings` are our choice: 5 iterations,
  ``w1 = 3`` with 1 mm (one voxel at the paper's 1 mm), ``w2 = 1`` with 5 mm
  and 10 intensity units (HU for CT: the kernel compares the image values
  passed, so normalised inputs need a sigma_gamma in their own units).
* The sigmas are per axis and in millimetres, so one setting fits scans of
  any spacing; ``sigma_voxels = sigma_mm / spacing`` per axis
  (:func:`sigmas_in_voxels`) because the lattice features are voxel indices.
* Two labels (background, pancreas); the result is the foreground marginal
  Q(S_i = 1) after the last iteration, and the mask is ``Q >= 0.5``
  (the argmax of two labels).
* The network's probability is clipped to [1e-6, 1 - 1e-6] before the log
  so a saturated sigmoid gives a finite unary that the pairwise terms can
  still overrule.

Arrays are ``[x, y, z]``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfpanc.errors import InputError

_CLIP = 1e-6


@dataclasses.dataclass(frozen=True)
class CRFSettings:
    """The CRF's parameters (defaults our choice: the paper gives none).

    Args:
        iterations: mean-field iterations (``--crf_iterations``).
        w1: smoothness-kernel weight (``--crf_w1``); 0 drops the kernel.
        sigma_alpha_mm: smoothness-kernel width per axis ``[x, y, z]``, mm.
        w2: appearance-kernel weight (``--crf_w2``); 0 drops the kernel.
        sigma_beta_mm: appearance-kernel spatial width per axis, mm.
        sigma_gamma: appearance-kernel intensity width, in the units of the
            image passed to :func:`dense_crf` (HU for CT).

    Spatial sigmas become voxels through the spacing (``sigma_mm /
    spacing`` per axis). Wider, stronger kernels (DeepMedic's 3 mm / 20 mm,
    w 3 / 5) erased an under-confident phantom C2 result entirely; see the
    README's multitask section for what the CRF did there.
    """

    iterations: int = 5
    w1: float = 3.0
    sigma_alpha_mm: tuple = (1.0, 1.0, 1.0)
    w2: float = 1.0
    sigma_beta_mm: tuple = (5.0, 5.0, 5.0)
    sigma_gamma: float = 10.0

    def validate(self):
        """Raise :class:`InputError` naming the flag of the first bad value."""
        if isinstance(self.iterations, bool) or int(self.iterations) != self.iterations \
                or self.iterations < 1:
            raise InputError("--crf_iterations", f"must be an integer >= 1, got {self.iterations!r}")
        for flag, weight in (("--crf_w1", self.w1), ("--crf_w2", self.w2)):
            if not (math.isfinite(weight) and weight >= 0):
                raise InputError(flag, f"must be a finite number >= 0, got {weight!r}")
        for flag, sigmas in (("--crf_sigma_alpha", self.sigma_alpha_mm),
                             ("--crf_sigma_beta", self.sigma_beta_mm)):
            if len(tuple(sigmas)) != 3:
                raise InputError(flag, f"needs 3 values (x, y, z in mm), got {len(tuple(sigmas))}")
            if not all(math.isfinite(s) and s > 0 for s in sigmas):
                raise InputError(flag, f"every sigma must be > 0 mm, got {tuple(sigmas)!r}")
        if not (math.isfinite(self.sigma_gamma) and self.sigma_gamma > 0):
            raise InputError("--crf_sigma_gamma", f"must be > 0, got {self.sigma_gamma!r}")
        return self


def sigmas_in_voxels(sigma_mm, spacing):
    """Per-axis sigma in voxels: ``sigma_mm / spacing`` (both ``[x, y, z]``).

    >>> sigmas_in_voxels((3.0, 3.0, 3.0), (0.75, 0.75, 1.5))
    (4.0, 4.0, 2.0)
    """
    sigma_mm, spacing = tuple(sigma_mm), tuple(spacing)
    if len(sigma_mm) != len(spacing):
        raise ValueError(f"{len(sigma_mm)} sigmas for {len(spacing)} spacing values")
    if not all(s > 0 for s in spacing):
        raise ValueError(f"spacing must be > 0 mm on every axis, got {spacing}")
    return tuple(float(s) / float(d) for s, d in zip(sigma_mm, spacing))


def dense_crf(probability, image, spacing, settings=CRFSettings()):
    """Refine a foreground probability with the paper's 3D dense CRF.

    Args:
        probability: the network's foreground probability ``[x, y, z]``,
            values in [0, 1].
        image: the intensities of the same shape (HU for CT, in the units
            ``settings.sigma_gamma`` is given in).
        spacing: voxel size in mm per axis ``[x, y, z]``.
        settings: :class:`CRFSettings`.

    Returns:
        float32 ``[x, y, z]``: the CRF's foreground marginal Q(S_i = 1); the
        mask is ``dense_crf(...) >= 0.5``.

    Raises:
        InputError: ``--crf`` when pydensecrf2 is not installed, or a
            ``--crf_*`` flag for a bad setting.

    >>> p = np.full((8, 8, 4), 0.3, np.float32); p[2:6, 2:6, 1:3] = 0.7
    >>> p[0, 7, 0] = 0.6  # an isolated false positive
    >>> img = np.where(p == 0.7, 100.0, 0.0).astype(np.float32)
    >>> q = dense_crf(p, img, spacing=(1.0, 1.0, 2.0))
    >>> q.shape, q.dtype, int((q >= 0.5).sum()), bool(q[0, 7, 0] < 0.5)
    ((8, 8, 4), dtype('float32'), 30, True)
    """
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import create_pairwise_bilateral, create_pairwise_gaussian
    except ImportError:
        raise InputError("--crf", "needs the pydensecrf2 package (pip install pydensecrf2)") from None
    settings.validate()
    probability = np.asarray(probability, dtype=np.float32)
    image = np.asarray(image, dtype=np.float32)
    if probability.ndim != 3 or probability.shape != image.shape:
        raise ValueError(f"probability {probability.shape} and image {image.shape} "
                         "must be the same 3D [x, y, z] shape")
    if len(tuple(spacing)) != 3:
        raise ValueError(f"spacing needs 3 values, got {tuple(spacing)}")
    shape = probability.shape
    n_voxels = int(np.prod(shape))

    p = np.clip(probability, _CLIP, 1.0 - _CLIP)
    # (label, x, y, z) flattened in C order: the same voxel order as the
    # helpers' meshgrid(indexing="ij").reshape(d, -1) features below.
    unary = -np.log(np.stack([1.0 - p, p]).reshape(2, n_voxels))
    crf = dcrf.DenseCRF(n_voxels, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    # A zero weight adds nothing to the energy; skipping it also saves a
    # lattice build (and keeps w1 = w2 = 0 the unary's argmax exactly).
    if settings.w1 > 0:
        feats = create_pairwise_gaussian(sigmas_in_voxels(settings.sigma_alpha_mm, spacing), shape)
        # A scalar compat is pydensecrf's Potts compatibility (Eq. 7's mu).
        crf.addPairwiseEnergy(np.ascontiguousarray(feats, dtype=np.float32),
                              compat=float(settings.w1))
    if settings.w2 > 0:
        feats = create_pairwise_bilateral(sigmas_in_voxels(settings.sigma_beta_mm, spacing),
                                          (float(settings.sigma_gamma),), image, chdim=-1)
        crf.addPairwiseEnergy(np.ascontiguousarray(feats, dtype=np.float32),
                              compat=float(settings.w2))
    q = np.asarray(crf.inference(int(settings.iterations)), dtype=np.float32)
    return np.ascontiguousarray(q.reshape((2,) + shape)[1])
