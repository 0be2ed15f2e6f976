"""Two-stage 3D U-Net: 1/4-resolution localisation, full-resolution ROI refinement, two-box voting.

Where each part of the paper lives:

* :mod:`~tfpanc.methods.two_stage.config`: its flags, defaults and validation;
* :mod:`~tfpanc.methods.two_stage.losses`: Eq. 1, Dice + gamma center loss;
* :mod:`~tfpanc.methods.two_stage.recipe`: both stages' training;
* :mod:`~tfpanc.methods.two_stage.predictor`: Fig. 2, the boxes and the vote;
* :mod:`~tfpanc.methods.two_stage.evaluation` and
  ``python -m tfpanc.methods.two_stage.tables``: Tables 1 and 2;
* :mod:`~tfpanc.methods.two_stage.serving`: the SavedModel for TF Serving.

The model is :class:`tfpanc.models.UNet3D`; sliding windows, the vote and
box arithmetic are generic (:mod:`tfpanc.inference`, :mod:`tfpanc.data.boxes`).
"""

from tfpanc.methods import registry
from tfpanc.methods.two_stage.config import TwoStageConfig, TwoStageExportOptions

METHOD = registry.register(registry.Method(
    name="two_stage",
    config=TwoStageConfig,
    train="tfpanc.methods.two_stage.recipe:train",
    crop_multiple="tfpanc.methods.two_stage.predictor:crop_multiple",
    predictor="tfpanc.methods.two_stage.predictor:load_predictor",
    evaluate="tfpanc.methods.two_stage.evaluation:evaluate_run",
    export="tfpanc.methods.two_stage.serving:export_run",
    export_options=TwoStageExportOptions,
    compare="tfpanc.methods.two_stage.comparison",
    description="Two-stage 3D U-Net: 1/4-resolution coarse, ROI fine, Dice + center loss, two-box vote",
))
