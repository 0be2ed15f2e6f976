"""Tissue classes of the phantom and their CT and MRI values.

The phantom is first drawn as a map of tissue ids (uint8), then turned into
an image by looking each id up here. CT values are portal-venous-phase HU of
contrast-enhanced abdominal CT (the NIH Pancreas-CT protocol): each is a
``(mean, per-case jitter)`` pair, so that patients differ in enhancement.
The pancreas mean is set so that, after texture and partial-volume blur, the
mean inside the label is 92-104 HU as measured on the real NIH slices; the
liver, bowel walls, stomach wall and partial-volumed vessels are given
overlapping values so that no single HU interval isolates it.

MRI values are arbitrary units of a T1-weighted (non fat-suppressed) gradient
echo: fat bright, pancreas the brightest parenchyma, liver intermediate,
spleen and muscle darker, fluid and flowing blood dark.
"""

from __future__ import annotations

import enum

import numpy as np


class Tissue(enum.IntEnum):
    AIR = 0
    FAT = 1            # subcutaneous
    SKIN = 2
    MUSCLE = 3
    VISCERAL_FAT = 4   # intra-abdominal / retroperitoneal
    CORTICAL_BONE = 5
    MARROW = 6
    DISC = 7
    CSF = 8
    LIVER = 9
    SPLEEN = 10
    KIDNEY_CORTEX = 11
    KIDNEY_MEDULLA = 12
    URINE = 13
    BILE = 14
    ARTERY = 15
    VEIN = 16          # IVC, renal veins
    PORTAL = 17        # portal, splenic, mesenteric veins
    BOWEL_WALL = 18
    FLUID = 19         # bowel / stomach contents
    GAS = 20
    ORAL_CONTRAST = 21
    STOOL = 22
    STOMACH_WALL = 23
    PANCREAS = 24
    TABLE = 25
    CARTILAGE = 26
    LUNG = 27
    HEART = 28
    CORD = 29
    ADRENAL = 30
    TABLE_FOAM = 31
    FAT_PLANE = 32     # fat between organs that later organs may not take
    CHYME = 33         # collapsed small bowel: mucosal folds and a little fluid


NUM_TISSUES = 34

# (mean HU, per-case jitter (uniform +-))
CT_HU = {
    Tissue.AIR: (-1000, 0),
    Tissue.FAT: (-105, 10),
    Tissue.SKIN: (30, 10),
    Tissue.MUSCLE: (58, 6),
    Tissue.VISCERAL_FAT: (-98, 10),
    Tissue.CORTICAL_BONE: (850, 150),
    Tissue.MARROW: (230, 50),
    Tissue.DISC: (85, 10),
    Tissue.CSF: (12, 5),
    Tissue.LIVER: (105, 6),
    Tissue.SPLEEN: (110, 8),
    Tissue.KIDNEY_CORTEX: (175, 25),
    Tissue.KIDNEY_MEDULLA: (115, 20),
    Tissue.URINE: (12, 6),
    Tissue.BILE: (8, 6),
    Tissue.ARTERY: (175, 30),
    Tissue.VEIN: (135, 15),
    Tissue.PORTAL: (168, 15),
    Tissue.BOWEL_WALL: (105, 10),
    Tissue.FLUID: (18, 10),
    Tissue.GAS: (-950, 30),
    Tissue.ORAL_CONTRAST: (320, 100),
    Tissue.STOOL: (-30, 30),
    Tissue.STOMACH_WALL: (100, 10),
    Tissue.PANCREAS: (103.5, 1.5),
    Tissue.TABLE: (250, 50),
    Tissue.CARTILAGE: (130, 20),
    Tissue.LUNG: (-860, 30),
    Tissue.HEART: (140, 20),
    Tissue.CORD: (35, 5),
    Tissue.ADRENAL: (60, 10),
    Tissue.TABLE_FOAM: (-850, 30),
    Tissue.FAT_PLANE: (-98, 10),
    Tissue.CHYME: (95, 12),
}

# T1-weighted GRE, arbitrary units (mean, jitter)
MRI_T1 = {
    Tissue.AIR: (0, 0),
    Tissue.FAT: (950, 60),
    Tissue.SKIN: (500, 50),
    Tissue.MUSCLE: (300, 30),
    Tissue.VISCERAL_FAT: (920, 60),
    Tissue.CORTICAL_BONE: (30, 10),
    Tissue.MARROW: (700, 80),
    Tissue.DISC: (250, 30),
    Tissue.CSF: (120, 20),
    Tissue.LIVER: (520, 40),
    Tissue.SPLEEN: (360, 30),
    Tissue.KIDNEY_CORTEX: (440, 40),
    Tissue.KIDNEY_MEDULLA: (300, 40),
    Tissue.URINE: (100, 20),
    Tissue.BILE: (140, 30),
    Tissue.ARTERY: (60, 20),
    Tissue.VEIN: (110, 30),
    Tissue.PORTAL: (110, 30),
    Tissue.BOWEL_WALL: (420, 40),
    Tissue.FLUID: (130, 30),
    Tissue.GAS: (10, 5),
    Tissue.ORAL_CONTRAST: (140, 30),
    Tissue.STOOL: (380, 60),
    Tissue.STOMACH_WALL: (420, 40),
    Tissue.PANCREAS: (640, 40),
    Tissue.TABLE: (0, 0),
    Tissue.CARTILAGE: (280, 30),
    Tissue.LUNG: (20, 10),
    Tissue.HEART: (150, 40),
    Tissue.CORD: (330, 30),
    Tissue.ADRENAL: (380, 30),
    Tissue.TABLE_FOAM: (0, 0),
    Tissue.FAT_PLANE: (920, 60),
    Tissue.CHYME: (300, 40),
}


def value_table(rng, modality):
    """One case's tissue values: float32 lookup table indexed by tissue id.

    Args:
        rng: numpy Generator (per case).
        modality: ``"ct"`` or ``"mri"``.

    Example:
    >>> lut = value_table(np.random.default_rng(0), "ct")
    >>> float(lut[Tissue.AIR])
    -1000.0
    """
    table = CT_HU if modality == "ct" else MRI_T1
    lut = np.zeros(NUM_TISSUES, np.float32)
    jitter = rng.uniform(-1.0, 1.0, NUM_TISSUES)
    for tissue, (mean, spread) in table.items():
        lut[int(tissue)] = mean + spread * jitter[int(tissue)]
    lut[Tissue.FAT_PLANE] = lut[Tissue.VISCERAL_FAT]
    return lut


def mask_table(tissues):
    """Boolean lookup ``table[tissue_id]`` that is True for ``tissues``."""
    table = np.zeros(256, bool)
    table[[int(t) for t in tissues]] = True
    return table
