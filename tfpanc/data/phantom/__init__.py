"""tfpanc's synthetic abdominal CT/MRI phantom with pancreas labels.

Real pancreas data cannot be shipped, so every test, demo and benchmark of
tfpanc runs on this phantom. A case is a contrast-enhanced (portal-venous)
abdominal CT of a fixed physical field of view (400 x 400 x 300 mm; ``shape``
only sets the sampling) with body wall, spine and ribs, liver, spleen,
kidneys, great and mesenteric vessels, stomach, duodenum, colon and small
bowel, and a pancreas drawn as a lobulated head-neck-body-tail tube whose
position, orientation, size and shape vary between cases. Its intensity and
shape statistics are calibrated on the real files in ``../shared/realdata``
(see ``tools/phantom_stats.py``).

Public API:

* :func:`make_case` -> :class:`PhantomCase` (``image``, ``label``, ``spacing``,
  ``origin``...), arrays ``[x, y, z]`` in tfpanc's RAS+ convention.
* :func:`write_dataset`: an MSD-style folder (``imagesTr``, ``labelsTr``,
  ``dataset.json``).
* CLI: ``python -m tfpanc.data.phantom --output_dir D --num_cases N``.

Example:
>>> case = make_case((96, 96, 48), seed=0, case_index=0)
>>> case.image.shape, case.image.dtype, int(case.label.max())
((96, 96, 48), dtype('int16'), 1)

Modules: ``case`` (orchestration), ``layout`` (the random anatomy),
``body``/``spine_ribs``/``organs``/``gut``/``pancreas`` (painting), ``fields``
(grid, smooth fields, tubes), ``scene`` (the tissue canvas), ``tissues``
(HU and MRI values), ``appearance`` (slice profile, PSF blur, noise),
``stats`` (the statistics compared with real data), ``dataset`` (writing).
"""

from tfpanc.data.phantom.case import DEFAULT_SHAPE, FOV_HI, FOV_LO, MODALITIES, PhantomCase, make_case
from tfpanc.data.phantom.dataset import write_dataset

__all__ = ["DEFAULT_SHAPE", "FOV_HI", "FOV_LO", "MODALITIES", "PhantomCase", "make_case", "write_dataset"]
