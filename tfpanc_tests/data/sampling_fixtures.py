"""Shared test data for the sampler and pipeline tests: a tiny cache and a read recorder."""

import numpy as np

from tfpanc.data.cache import CaseCache, write_case, write_index
from tfpanc.data.io import Geometry

SHAPES = [(24, 20, 12), (22, 26, 9), (20, 18, 14)]


def make_cache(root, shapes=SHAPES, modality="ct", seed=0):
    """A tiny cache; returns (CaseCache, {case_id: (image, label)}).

    Each case holds a box of pancreas (axial slices 3..7) plus one voxel in
    slice 8, so slices differ in pancreas pixel counts.
    """
    rng = np.random.default_rng(seed)
    raw = {}
    for i, shape in enumerate(shapes):
        if modality == "ct":
            image = rng.integers(-300, 400, shape).astype(np.int16)
        else:
            image = rng.normal(200.0, 50.0, shape).astype(np.float32)
            image[:3] = rng.normal(5.0, 1.0, (3,) + shape[1:])
        label = np.zeros(shape, np.uint8)
        label[6 + i:14 + i, 5:11, 3:8] = 1
        label[10, 10, 8] = 1
        cid = f"case_{i:02d}"
        write_case(root, cid, image, label, Geometry.from_spacing(shape, (0.8, 0.8, 2.5)), modality=modality)
        raw[cid] = (image, label)
    write_index(root, "test", list(raw), modality, "synthetic")
    return CaseCache(root), raw


class _Recorder:
    """Array stand-in that records how many elements each read returns."""

    def __init__(self, array, log):
        self.array, self.log = array, log
        self.shape, self.dtype, self.ndim, self.size = array.shape, array.dtype, array.ndim, array.size

    def __getitem__(self, index):
        out = self.array[index]
        self.log.append(np.size(out))
        return out


class RecordingCache:
    """A cache whose arrays record the size of every read."""

    def __init__(self, cache, log):
        self.cache, self.log, self.root = cache, log, cache.root

    def case(self, cid):
        case = self.cache.case(cid)
        rec = type("Case", (), {})()
        rec.meta = case.meta
        rec.image = _Recorder(case.image, self.log)
        rec.label = _Recorder(case.label, self.log)
        return rec
