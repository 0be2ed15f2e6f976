"""Synthetic axial 3-slice stacks rendered on the fly from the anatomy bank.

One sample: draw an anatomy, a slice position (``positive_fraction`` of
them through the pancreas) and a field of view; sample the bank's tissue map
along the (optionally deformed) slice planes at twice the output resolution;
look each tissue up in a per-sample intensity table; average over the slice
thickness and over 2 x 2 pixels (so partial volume is real); add noise and
blur with the point-spread function; then bias and a random window. The
steps of the ablation ladder switch groups of this on (:data:`STEPS`):

* nothing on: the phantom's own appearance (its HU table and texture, 2 mm
  slices, 0.45 mm PSF, 12-16 HU noise), the only freedom a field of view;
* ``intensity``: half of the samples from the coupled contrast-phase prior,
  half fully random (:mod:`tfpanc.data.synthetic.intensity`), random
  texture strength and a smooth within-tissue field;
* ``contrast`` (instead of ``intensity``): every sample from the
  contrast-phase prior alone, with the phantom's texture: CT-to-CT
  transfer without SynthSeg's fully random half, which teaches contrasts
  no CT scanner makes;
* ``hu`` and ``texture``: intensity's draws split in two (together they
  are ``intensity``), to tell which half of it changes what a network
  finds on real scans (README, sim-to-real): ``hu`` its per-tissue HU
  (prior and random halves) with the phantom's texture, ``texture`` its
  random texture strength and within-organ fields on the phantom's HU;
* ``window``: a random linear map of every HU value of the sample (gain
  0.9-1.1, offset +-25 HU), the phantom's look otherwise: a global
  brightness and contrast change, as nnU-Net's intensity augmentation, for a
  network that otherwise learns the phantom's pancreas at 103.5 +- 1.5 HU
  (the U-Net on shapes fell from 80-83 % to 25-38 % held-out DSC with
  those cases 20 HU darker, ``tools/hu_shift_probe.py``);
* ``resolution``: slice thickness 0.5-5 mm (spacing 70-100 % of it), PSF
  sigma 0.3-1.0 mm, noise 3-35 HU, an additive bias field up to 25 HU and
  the random linear window of ``window``. The scan's in-plane
  pixel (0.6-1.0 mm in the issue) is finer than the output grid the
  network works on, so after resampling it only changes the blur, which the
  PSF range covers;
* ``deformation``: random affine (rotation +-15 deg, scale 0.85-1.15 per
  axis, shear +-0.1, plane tilt +-5 deg) and an elastic field (cubic
  B-spline-like upsampling of a coarse random displacement, up to 4 mm);
* ``lean``: the organs reach into the intra-abdominal fat around them by
  0 to 8 mm a sample, so the pancreas touches bowel, vessels and stomach
  as in lean patients (:mod:`tfpanc.data.synthetic.lean`);
* ``shapes``: not a rendering step: the bank's glands are varied
  procedurally, and replaced by the label maps of ``--shape_dir`` when
  given (:mod:`tfpanc.data.synthetic.shapes`).

Everything random comes from ``default_rng([seed, epoch, index])``, like
every tfpanc sampler. A 128 x 128 x 3 sample takes 55 ms (no step on) to
76 ms (intensity, resolution, deformation) on one core
(``tools/benchmark_synthetic.py``); given as its centre slice alone
(``single_slice``) the neighbours are not rendered: 30 against 50 ms a
sample with those three steps on the 2-core AMD EPYC.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from tfpanc.data.intensity import IntensityNormalizer
from tfpanc.data.phantom.appearance import blur, noise_gain
from tfpanc.data.phantom.tissues import Tissue, value_table
from tfpanc.data.synthetic import intensity, lean
from tfpanc.errors import InputError

STEPS = ("contrast", "intensity", "hu", "texture", "window", "resolution", "deformation", "lean", "shapes")
OUTPUT_SPACING = 400.0 / 256  # mm: the in-plane pixel of tfpanc's 256 x 256 phantom slices
PHANTOM_SLICE_MM = 2.0
PHANTOM_PSF_MM = 0.45
SUPERSAMPLE = 2


def parse_steps(text):
    """``"intensity,resolution"`` -> a tuple of steps in ladder order; ``"none"`` or ``""`` -> ()."""
    names = [s.strip() for s in str(text).split(",") if s.strip() and s.strip() != "none"]
    unknown = [s for s in names if s not in STEPS]
    if unknown:
        raise InputError("--synthetic_steps", f"unknown step(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(STEPS)} or none")
    if sum(s in names for s in ("contrast", "intensity", "hu")) > 1:
        raise InputError("--synthetic_steps", "give one of contrast (the prior alone), intensity (prior and "
                         "random, with texture) and hu (prior and random, the phantom's texture)")
    return tuple(s for s in STEPS if s in names)


class Acquisition:
    """The drawn scan settings of one sample (thickness, spacing, PSF, noise, bias, window).

    Args:
        rng: numpy Generator of the sample.
        randomised: the ``resolution`` step (every setting drawn).
        window: the ``window`` step (only the linear HU map drawn; implied by ``randomised``).
    """

    def __init__(self, rng, randomised, window=False):
        if randomised:
            self.thickness = float(rng.uniform(0.5, 5.0))
            self.slice_spacing = max(0.5, self.thickness * float(rng.uniform(0.7, 1.0)))
            self.psf_mm = float(rng.uniform(0.3, 1.0))
            self.noise = float(rng.uniform(3.0, 35.0))
            self.bias = float(rng.uniform(0.0, 25.0))
            self.gain, self.offset = draw_window(rng)
        else:
            self.thickness = self.slice_spacing = PHANTOM_SLICE_MM
            self.psf_mm = PHANTOM_PSF_MM
            self.noise = float(rng.uniform(12.0, 16.0))
            self.bias, self.gain, self.offset = 0.0, 1.0, 0.0
            if window:
                # Drawn after the noise, so the phantom look's samples are unchanged without it.
                self.gain, self.offset = draw_window(rng)


def draw_window(rng):
    """``(gain, offset)`` of the random linear HU map of ``window`` and ``resolution``."""
    return float(rng.uniform(0.9, 1.1)), float(rng.uniform(-25, 25))


def smooth_field(rng, shape, sigma):
    """Unit-std Gaussian-filtered white noise (a band-limited random field) of ``shape``.

    Drawn on a grid coarser by up to sigma/2 and zoomed up linearly: the
    field has no detail finer than sigma, and filtering at full size took
    about 25 ms of a 147 ms sample (profiled).
    """
    step = max(1, int(sigma // 2))
    coarse = [-(-n // step) + 1 for n in shape]
    field = ndi.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma / step, mode="wrap")
    if step > 1:
        field = ndi.zoom(field, step, order=1)
    field = np.ascontiguousarray(field[tuple(slice(0, n) for n in shape)])
    return field / (field.std() + 1e-6)


def plane_coordinates(rng, size, pixel, deform):
    """In-plane offsets (mm) of the render grid after the drawn affine and elastic field.

    Returns ``(dx, dy, tilt)``: ``(n, n)`` world offsets from the centre and the
    plane's z-slope per mm along x and y.
    """
    n = size * SUPERSAMPLE
    u = (np.arange(n, dtype=np.float32) - (n - 1) / 2) * pixel
    uu, vv = np.meshgrid(u, u, indexing="ij")
    if not deform:
        return uu, vv, (0.0, 0.0)
    angle = math.radians(rng.uniform(-15, 15))
    sx, sy = rng.uniform(0.85, 1.15, 2)
    shear = rng.uniform(-0.1, 0.1)
    c, s = math.cos(angle), math.sin(angle)
    a = np.array([[c, -s], [s, c]]) @ np.array([[sx, shear], [0, sy]])
    dx = a[0, 0] * uu + a[0, 1] * vv
    dy = a[1, 0] * uu + a[1, 1] * vv
    strength = rng.uniform(0.0, 4.0)
    for d in (dx, dy):
        coarse = rng.standard_normal((6, 6)) * strength
        d += ndi.zoom(coarse, n / 6, order=1, mode="nearest")[:n, :n]
    tilt = tuple(math.tan(math.radians(t)) for t in rng.uniform(-5, 5, 2))
    return dx, dy, tilt


def nearest_voxels(coords, shape):
    """Integer voxel indices (3, ...) nearest to ``coords``, clamped to ``shape``.

    Nearest-neighbour lookups by fancy indexing: for uint8 tissue ids and
    their texture this is what ``scipy.ndimage.map_coordinates(order=0)``
    computes, without copying (and converting) the block around the plane
    first; with the coarse smooth fields it took a full-step sample from
    132 to 66 ms, and a memory map reads only the pages it touches.
    """
    out = np.rint(coords).astype(np.intp)
    for d in range(3):
        np.clip(out[d], 0, shape[d] - 1, out=out[d])
    return tuple(out)


class SliceGenerator:
    """Renders synthetic 3-slice stacks and their centre-slice pancreas masks.

    Args:
        bank: an :class:`~tfpanc.data.synthetic.bank.AnatomyBank`.
        steps: the ladder steps switched on (see :data:`STEPS`).
        size: output ``size x size`` pixels of :data:`OUTPUT_SPACING` mm.
        positive_fraction: probability that the slice passes through pancreas.
        window: the CT window the output is normalised with.
        intensity_fraction: with the ``intensity`` step, the share of
            samples it draws; the others keep the phantom's look.
        log: optional progress callback (the ``lean`` step's one-off fill of the bank).

    Example:
    >>> generator = SliceGenerator(bank, ("intensity",), size=128)      # doctest: +SKIP
    >>> image, mask = generator.render(np.random.default_rng(0))        # doctest: +SKIP
    >>> image.shape, mask.shape                                          # doctest: +SKIP
    ((128, 128, 3), (128, 128, 1))
    """

    def __init__(self, bank, steps, size=128, positive_fraction=0.5, window=(-100.0, 240.0),
                 intensity_fraction=1.0, log=None):
        self.bank = bank
        self.steps = tuple(steps)
        self.intensity_fraction = float(intensity_fraction)
        self.size = int(size)
        self.positive_fraction = float(positive_fraction)
        self.normalizer = IntensityNormalizer("ct", window=tuple(window))
        if "lean" in self.steps:
            bank.ensure_fat_fill(log)  # once per bank; a no-op when its arrays are there

    def _centre(self, rng, a, tissue):
        entry = self.bank.entries[a]
        sp = self.bank.spacing
        if entry.pancreas_slices and rng.random() < self.positive_fraction:
            k = int(rng.choice(entry.pancreas_slices))
            xs, ys = np.nonzero(np.asarray(tissue[:, :, k]) == Tissue.PANCREAS)
            j = int(rng.integers(len(xs)))
            reach = 0.35 * self.size * OUTPUT_SPACING
            xy = np.array([xs[j], ys[j]]) * sp[:2] + entry.origin[:2] + rng.uniform(-reach, reach, 2)
            z = k * sp[2] + entry.origin[2]
        else:
            xy = rng.uniform(-90, 90, 2)
            z = entry.origin[2] + rng.uniform(0, entry.shape[2] * sp[2])
        return xy, z + rng.uniform(-0.5, 0.5) * sp[2]

    def draw_appearance(self, rng):
        """One sample's ``(HU per tissue, texture gain per tissue, within-organ field amplitude per tissue)``."""
        randomised = "intensity" in self.steps
        # Drawn only for a mix, so that runs without one keep their random stream.
        if randomised and self.intensity_fraction < 1:
            randomised = rng.random() < self.intensity_fraction
        if "contrast" in self.steps:
            lut = intensity.realistic_values(rng)
        elif randomised or "hu" in self.steps:
            lut = intensity.realistic_values(rng) if rng.random() < 0.5 else intensity.random_values(rng)
        else:
            lut = value_table(rng, "ct")
        textured = randomised or "texture" in self.steps
        return lut, intensity.texture_gains(rng, textured), intensity.subclass_gains(rng, textured)

    def render(self, rng, single_slice=False):
        """``(image (size, size, 3) float32 in [0, 1], mask (size, size, 1) float32)``.

        ``single_slice``: the centre slice alone, given three times (what a
        2D export without neighbours gives the network); the neighbours are
        not rendered.
        """
        a = int(rng.integers(len(self.bank)))
        tissue, texture = self.bank.arrays(a)
        entry, sp = self.bank.entries[a], np.asarray(self.bank.spacing)
        acq = Acquisition(rng, "resolution" in self.steps, "window" in self.steps)
        (cx, cy), cz = self._centre(rng, a, tissue)
        pixel = OUTPUT_SPACING / SUPERSAMPLE
        dx, dy, tilt = plane_coordinates(rng, self.size, pixel, "deformation" in self.steps)
        lut, tex_gain, sub_gain = self.draw_appearance(rng)
        n = self.size * SUPERSAMPLE
        fill = self.bank.fat_fill_arrays(a) if "lean" in self.steps else None
        reach = lean.draw_reach(rng) if fill is not None else 0
        subclass = smooth_field(rng, (n, n), rng.uniform(1.5, 4.0)) if sub_gain.any() else None
        subs = max(1, math.ceil(acq.thickness / sp[2]))
        offsets = (np.arange(subs) + 0.5) / subs * acq.thickness - acq.thickness / 2
        channels, pancreas = [], None
        for c in (0,) if single_slice else (-1, 0, 1):
            acc = np.zeros((n, n), np.float32)
            frac = np.zeros((n, n), np.float32)
            for off in offsets:
                z = cz + c * acq.slice_spacing + off + tilt[0] * dx + tilt[1] * dy
                coords = np.stack([(cx + dx - entry.origin[0]) / sp[0], (cy + dy - entry.origin[1]) / sp[1],
                                   (z - entry.origin[2]) / sp[2]])
                idx = nearest_voxels(coords, tissue.shape)
                t, tex = tissue[idx], texture[idx]
                if fill is not None:
                    t, tex = lean.lean_tissue(t, tex, fill[0][idx], fill[1][idx], reach)
                values = lut[t] + tex_gain[t] * tex
                if subclass is not None:
                    values += sub_gain[t] * subclass
                acc += values
                if c == 0:
                    frac += t == Tissue.PANCREAS
            channels.append(acc / subs)
            if c == 0:
                pancreas = frac / subs
        image = np.stack(channels, axis=-1)
        image = self._scanner(rng, image, acq, pixel)
        image = image.reshape(self.size, 2, self.size, 2, len(channels)).mean(axis=(1, 3))
        if single_slice:
            image = np.repeat(image, 3, axis=-1)
        mask = pancreas.reshape(self.size, 2, self.size, 2).mean(axis=(1, 3)) >= 0.5
        return self.normalizer(image), mask[..., None].astype(np.float32)

    def _scanner(self, rng, image, acq, pixel):
        # Noise before the PSF, as the phantom draws it: correlated like filtered CT noise.
        sigmas = (acq.psf_mm / pixel, acq.psf_mm / pixel, 0.0)
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(acq.noise / noise_gain(sigmas))
        image = blur(np.ascontiguousarray(image), sigmas)
        if acq.bias:
            n = image.shape[0]
            image += acq.bias * smooth_field(rng, (n, n), 30.0 / pixel)[..., None]
        return image * acq.gain + acq.offset
