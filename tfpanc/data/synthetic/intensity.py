"""Per-sample tissue intensities: realistic CT priors or SynthSeg's fully random draw.

SynthSeg (Billot et al.) draws every label's mean intensity at random for
each training image, so that a network cannot rely on any one contrast; it
mixes such draws with draws from realistic priors. Here:

* **realistic** (:func:`realistic_values`): every tissue starts from its
  unenhanced HU (:data:`UNENHANCED_HU`) and gains a share of its
  portal-venous enhancement (the phantom's table,
  :data:`tfpanc.data.phantom.tissues.CT_HU`) given by one contrast phase
  drawn per sample, so vessels, kidneys, liver, spleen and pancreas
  brighten together, from non-contrast (phase 0, as in both
  TotalSegmentator scans) to portal venous (phase 1, the NIH protocol);
  the aorta gets an extra arterial factor. The pancreas may be fatty (its
  HU pulled towards fat by a drawn fat fraction: the TotalSegmentator
  example's pancreas has a median of -7 HU). Other tissues keep their HU
  with three times the phantom's per-case jitter.
* **random** (:func:`random_values`): every tissue but air uniform in
  :data:`RANDOM_HU`, a range a little wider than tfpanc's CT window
  (-100, 240), so some tissues saturate as bone and lung do in real windows.

The phantom's own draw (:func:`tfpanc.data.phantom.tissues.value_table`) is
the ladder's first rung.
"""

from __future__ import annotations

import numpy as np

from tfpanc.data.phantom.tissues import CT_HU, NUM_TISSUES, Tissue

# Non-contrast HU of the tissues contrast enhances (blood ~40 HU).
UNENHANCED_HU = {
    Tissue.LIVER: 58, Tissue.SPLEEN: 48, Tissue.KIDNEY_CORTEX: 32, Tissue.KIDNEY_MEDULLA: 30,
    Tissue.ARTERY: 42, Tissue.VEIN: 42, Tissue.PORTAL: 42, Tissue.HEART: 42, Tissue.PANCREAS: 42,
    Tissue.BOWEL_WALL: 38, Tissue.STOMACH_WALL: 38, Tissue.CHYME: 35, Tissue.ADRENAL: 30,
    Tissue.MUSCLE: 50, Tissue.SKIN: 25,
}
RANDOM_HU = (-250.0, 400.0)
FAT = (Tissue.FAT, Tissue.VISCERAL_FAT, Tissue.FAT_PLANE)


def realistic_values(rng):
    """HU per tissue id (float32, length ``NUM_TISSUES``) from the coupled contrast-phase prior."""
    lut = np.zeros(NUM_TISSUES, np.float32)
    phase = float(rng.uniform(0.0, 1.15))
    arterial = phase * float(rng.uniform(0.8, 2.0))
    for tissue, (mean, jitter) in CT_HU.items():
        value = mean + 3 * jitter * rng.uniform(-1, 1)
        if tissue in UNENHANCED_HU:
            base = UNENHANCED_HU[tissue]
            gain = arterial if tissue == Tissue.ARTERY else phase
            value = base + gain * (mean - base) * rng.uniform(0.8, 1.2) + jitter * rng.uniform(-1, 1)
        lut[int(tissue)] = value
    fat = lut[Tissue.VISCERAL_FAT]
    lut[Tissue.PANCREAS] += float(rng.uniform(0.0, 0.6) ** 2) * (fat - lut[Tissue.PANCREAS])
    if rng.random() < 0.5:  # no oral contrast given
        lut[Tissue.ORAL_CONTRAST] = lut[Tissue.FLUID]
    for t in FAT:
        lut[int(t)] = fat if t != Tissue.FAT else lut[Tissue.FAT]
    return lut


def random_values(rng):
    """HU per tissue id drawn uniformly in :data:`RANDOM_HU` (air stays -1000)."""
    lut = rng.uniform(*RANDOM_HU, NUM_TISSUES).astype(np.float32)
    lut[Tissue.AIR] = -1000.0
    return lut


def texture_gains(rng, randomised):
    """Per-tissue factor on the bank's texture (units of 100 HU -> HU)."""
    if not randomised:
        return np.full(NUM_TISSUES, 100.0, np.float32)
    return (100.0 * rng.uniform(0.3, 2.0, NUM_TISSUES)).astype(np.float32)


def subclass_gains(rng, randomised):
    """Per-tissue HU amplitude of the smooth within-organ field (SynthSeg's sub-classes)."""
    if not randomised:
        return np.zeros(NUM_TISSUES, np.float32)
    return rng.uniform(0.0, 25.0, NUM_TISSUES).astype(np.float32)
