"""Cascaded multitask 3D FCN with skeleton regression: C1 localisation, C2 multitask dense 3D U-Net, 3D dense CRF.

Where each part of the paper lives:

* :mod:`~tfpanc.methods.multitask.config`: its flags, defaults, validation
  and the conversion from the paper's depth x height x width sizes;
* :mod:`~tfpanc.methods.multitask.preprocess`: Sec. III-C, 1 mm, body crop,
  (-1, 1) intensities, and the way back to the input's grid;
* :mod:`~tfpanc.methods.multitask.skeleton`: the skeleton target (Sec. II-B-1);
* :mod:`~tfpanc.methods.multitask.losses`: Eqs. 1-4;
* :mod:`~tfpanc.methods.multitask.recipe`: C1 and C2 training;
* :mod:`~tfpanc.methods.multitask.predictor`: C1's region, C2's sliding
  windows, the CRF (:mod:`~tfpanc.methods.multitask.crf`, Eqs. 5-11);
* :mod:`~tfpanc.methods.multitask.evaluation` and
  ``python -m tfpanc.methods.multitask.tables``: Table I, the ablations,
  Figs. 8, 9, 11, 13 and the paired t-test;
* :mod:`~tfpanc.methods.multitask.serving` (with
  :mod:`~tfpanc.methods.multitask.graph`): the SavedModel for TF Serving
  (the CRF off: the answer of ``predict --nocrf``).

The networks are :class:`tfpanc.models.UNet3D` (C1) and
:class:`tfpanc.models.MultitaskDenseUNet3D` (C2); sliding windows, boxes and
derived caches are generic (:mod:`tfpanc.inference`, :mod:`tfpanc.data`).
"""

from tfpanc.methods import registry
from tfpanc.methods.multitask.config import MultitaskConfig, MultitaskExportOptions, MultitaskPredictOptions

METHOD = registry.register(registry.Method(
    name="multitask",
    config=MultitaskConfig,
    train="tfpanc.methods.multitask.recipe:train",
    predictor="tfpanc.methods.multitask.predictor:load_predictor",
    evaluate="tfpanc.methods.multitask.evaluation:evaluate_run",
    compare="tfpanc.methods.multitask.comparison",
    crops_body=True,  # its preprocessing crops the 1 mm volume to the body (Sec. III-C)
    resamples=True,  # ... after resampling to the run's --spacing
    predict_options=MultitaskPredictOptions,
    export="tfpanc.methods.multitask.serving:export_run",
    export_options=MultitaskExportOptions,
    description="Cascaded multitask 3D FCN: C1 at 1/4, multitask dense 3D U-Net with skeleton regression, "
                "sliding windows, 3D dense CRF",
))
