"""The anatomy bank: phantom tissue maps the synthetic generator renders from.

SynthSeg trains on images synthesised on the fly from a fixed set of label
maps; the bank is that set. Each anatomy is one phantom patient
(:func:`tfpanc.data.phantom.case.plan_anatomy`) painted on a slab of
:data:`BANK_SPACING` voxels covering the whole 400 mm field of view in-plane
and the pancreas's z-range plus :data:`SLAB_MARGIN_MM` above and below (the
pancreas-free slices the generator draws its negatives from). Per anatomy
the bank holds:

* ``NNN.tissue.npy``: uint8 tissue ids (:class:`~tfpanc.data.phantom.tissues.Tissue`), ``[x, y, z]``;
* ``NNN.texture.npy``: float16, the sum of the phantom's texture layers in
  units of 100 HU (pancreas lobules and clefts, organ mottling, fat
  stranding), which the generator scales per tissue and per sample;
* ``bank.json``: grid, the slices holding pancreas, the shape source;
* ``NNN.fill_tissue.npy`` and ``NNN.fill_distance.npy`` (uint8), only once
  the ``lean`` step asks for them (:meth:`AnatomyBank.ensure_fat_fill`):
  per fat voxel the nearest organ and its distance
  (:func:`tfpanc.data.synthetic.lean.fat_fill`), derived from the tissue
  map, so older banks gain them without a rebuild.

With ``shape_variety`` each gland is varied procedurally, and with
``shape_dir`` the phantom's own pancreas is first replaced by a label map
from that folder (both: :mod:`tfpanc.data.synthetic.shapes`).

Both arrays are memory-mapped when sampling, so the bank is never held in
memory whole. Building one anatomy takes about 4 s on one core (2.2 s of
planning, 1.6 s of painting) and 33 MB of disk.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tfpanc.data.phantom.appearance import tissue_values
from tfpanc.data.phantom.case import FOV_HI, FOV_LO, draw_scene, plan_anatomy
from tfpanc.data.phantom.fields import Grid
from tfpanc.data.phantom.scene import Scene
from tfpanc.data.phantom.tissues import NUM_TISSUES, Tissue
from tfpanc.errors import InputError
from tfpanc.result_files import read_json, sweep_temporaries, write_json, write_with, written_together

BANK_SPACING = (1.25, 1.25, 1.5)   # mm; finer than the generator's output, so partial volume is real
SLAB_MARGIN_MM = 40.0
BANK_VERSION = 1
FAT_FILL_KINDS = ("fill_tissue", "fill_distance")
_COARSE_SHAPE = (32, 32, 200)      # planning grid used to find the pancreas's z-range


def _pancreas_z_range(anatomy):
    grid = Grid.covering(FOV_LO, FOV_HI, _COARSE_SHAPE)
    scene = Scene(grid, detail=False)
    draw_scene(scene, anatomy)
    z = np.nonzero((scene.tissue == Tissue.PANCREAS).any(axis=(0, 1)))[0]
    zs = grid.axis(2)[z]
    return float(zs.min()) - grid.spacing[2], float(zs.max()) + grid.spacing[2]


def slab_grid(anatomy):
    """The bank grid of one anatomy: full field of view in-plane, pancreas z-range plus margins."""
    z0, z1 = _pancreas_z_range(anatomy)
    lo = [FOV_LO[0], FOV_LO[1], max(FOV_LO[2], z0 - SLAB_MARGIN_MM)]
    hi = [FOV_HI[0], FOV_HI[1], min(FOV_HI[2], z1 + SLAB_MARGIN_MM)]
    shape = [int(round((h - l) / s)) for l, h, s in zip(lo, hi, BANK_SPACING)]
    hi = [l + n * s for l, n, s in zip(lo, shape, BANK_SPACING)]
    return Grid.covering(lo, hi, shape)


def texture_sum(scene):
    """The scene's texture layers as one float32 volume (units of 100 HU): the phantom's own
    :func:`~tfpanc.data.phantom.appearance.tissue_values` with every tissue at 0 and unit gain."""
    return tissue_values(scene, np.zeros(NUM_TISSUES, np.float32), 1.0)


def paint_anatomy(seed, index):
    """The painted scene of phantom anatomy ``index`` on its bank slab."""
    anatomy = plan_anatomy(seed, index)
    scene = Scene(slab_grid(anatomy))
    draw_scene(scene, anatomy)
    return scene


@dataclasses.dataclass(frozen=True)
class BankEntry:
    """One anatomy of the bank (what ``bank.json`` lists)."""

    name: str
    shape: tuple
    origin: tuple
    pancreas_slices: tuple
    shape_source: str

    def to_json(self):
        return {"name": self.name, "shape": list(self.shape), "origin": list(self.origin),
                "pancreas_slices": list(self.pancreas_slices), "shape_source": self.shape_source}


class AnatomyBank:
    """A built bank, opened for sampling.

    Args:
        root: the bank folder (made by :func:`build_bank`).

    Example:
    >>> bank = build_bank("/tmp/bank_doc", 1, seed=0)      # doctest: +SKIP
    >>> tissue, texture = bank.arrays(0)                    # doctest: +SKIP
    >>> tissue.dtype, texture.dtype                         # doctest: +SKIP
    (dtype('uint8'), dtype('float16'))
    """

    def __init__(self, root):
        self.root = Path(root)
        meta = read_json(self.root / "bank.json", "build it with python -m tfpanc.data.synthetic")
        if meta.get("version") != BANK_VERSION:
            raise InputError(self.root / "bank.json", f"bank version {meta.get('version')}, this tfpanc "
                             f"reads version {BANK_VERSION}: build the bank again")
        self.meta = meta
        self.spacing = tuple(float(s) for s in meta["spacing"])
        self.entries = [BankEntry(e["name"], tuple(e["shape"]), tuple(e["origin"]), tuple(e["pancreas_slices"]),
                                  e["shape_source"]) for e in meta["anatomies"]]
        if not self.entries:
            raise InputError(self.root / "bank.json", "the bank lists no anatomies")

    def __len__(self):
        return len(self.entries)

    def arrays(self, i):
        """Memory-mapped ``(tissue, texture)`` of anatomy ``i``."""
        return self._open(i, ("tissue", "texture"))

    def fat_fill_arrays(self, i):
        """Memory-mapped ``(fill_tissue, fill_distance)`` of anatomy ``i`` (see :meth:`ensure_fat_fill`)."""
        return self._open(i, FAT_FILL_KINDS, "run with the lean step once to add them")

    def ensure_fat_fill(self, log=None):
        """Computes the ``lean`` step's arrays of every anatomy that lacks them (about 4 s each)."""
        from tfpanc.data.synthetic.lean import fat_fill

        for i, entry in enumerate(self.entries):
            if all((self.root / f"{entry.name}.{kind}.npy").exists() for kind in FAT_FILL_KINDS):
                continue
            tissue, _ = self.arrays(i)
            for kind, array in zip(FAT_FILL_KINDS, fat_fill(np.asarray(tissue), self.spacing)):
                write_with(self.root / f"{entry.name}.{kind}.npy", lambda t, a=array: np.save(t, a), ".npy")
            if log:
                log(f"bank: fat fill of anatomy {i + 1}/{len(self)} (lean step)")

    def _open(self, i, kinds, hint=""):
        name = self.entries[i].name
        out = []
        for kind in kinds:
            path = self.root / f"{name}.{kind}.npy"
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise InputError(path, f"cannot read bank array: {e}" + (f"; {hint}" if hint else "")) from None
            if array.shape != self.entries[i].shape:
                raise InputError(path, f"shape {array.shape}, bank.json says {self.entries[i].shape}")
            out.append(array)
        return tuple(out)


def bank_settings(num_anatomies, seed, shape_dir, shape_label, shape_variety):
    return {"num_anatomies": int(num_anatomies), "seed": int(seed),
            "shape_dir": None if shape_dir is None else str(Path(shape_dir).resolve()),
            "shape_label": int(shape_label), "shape_variety": bool(shape_variety)}


def build_bank(root, num_anatomies, seed=0, shape_dir=None, shape_label=0, shape_variety=False, log=None):
    """Paints ``num_anatomies`` phantom anatomies into ``root``; reuses a matching bank.

    Args:
        root: output folder (made; its files appear together, or not at all).
        num_anatomies: how many patients.
        seed: phantom seed (anatomy ``i`` is phantom case ``i`` of this seed).
        shape_dir: optional folder of NIfTI pancreas label maps that replace
            the phantom's pancreas (:mod:`tfpanc.data.synthetic.shapes`).
        shape_label: the pancreas's value in those maps (0: any nonzero).
        shape_variety: vary every gland procedurally
            (:func:`tfpanc.data.synthetic.shapes.vary_gland`).
        log: optional progress callback.

    Returns:
        The opened :class:`AnatomyBank`.
    """
    from tfpanc.data.synthetic.shapes import ShapeLibrary, vary_gland

    root = Path(root)
    settings = bank_settings(num_anatomies, seed, shape_dir, shape_label, shape_variety)
    if (root / "bank.json").exists():
        bank = AnatomyBank(root)
        if bank.meta.get("settings") == settings:
            return bank
        raise InputError(root, f"holds a bank built with {bank.meta.get('settings')}, asked for {settings}: "
                         "choose another folder or delete this one")
    if num_anatomies < 1:
        raise InputError("--synthetic_anatomies", f"must be at least 1, got {num_anatomies}")
    library = None if shape_dir is None else ShapeLibrary(shape_dir, shape_label)
    sweep_temporaries(root)  # what a killed build left
    entries = []
    with written_together(folder=root):
        for i in range(num_anatomies):
            scene = paint_anatomy(seed, i)
            source = "phantom"
            if library is not None:
                source = library.replace_pancreas(scene, np.random.default_rng([seed, i, 7]))
            if shape_variety:
                vary_gland(scene, np.random.default_rng([seed, i, 8]))
                source += ", varied"
            name = f"{i:03d}"
            texture = texture_sum(scene).astype(np.float16)
            write_with(root / f"{name}.tissue.npy", lambda t: np.save(t, scene.tissue), ".npy")
            write_with(root / f"{name}.texture.npy", lambda t: np.save(t, texture), ".npy")
            z = np.nonzero((scene.tissue == Tissue.PANCREAS).any(axis=(0, 1)))[0]
            entries.append(BankEntry(name, scene.tissue.shape, tuple(scene.grid.origin), tuple(int(v) for v in z),
                                     source))
            if log:
                log(f"bank: anatomy {i + 1}/{num_anatomies} ({source}, {len(z)} pancreas slices)")
        write_json(root / "bank.json", {"version": BANK_VERSION, "spacing": list(BANK_SPACING),
                                        "settings": settings, "anatomies": [e.to_json() for e in entries]})
    return AnatomyBank(root)

