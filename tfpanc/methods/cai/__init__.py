"""Cai et al.: PNet-MSA grown unit by unit with deep supervision, then a BiRNN over the slices.

Where each part of the paper lives:

* :mod:`~tfpanc.methods.cai.config`: its flags, defaults and validation;
* :mod:`~tfpanc.methods.cai.recipe`: the training recipe (growth, BiRNN);
* :mod:`~tfpanc.methods.cai.networks`: which network a run uses, its input
  multiple, weights loading;
* :mod:`~tfpanc.methods.cai.predictor`: volume in, probability out;
* :mod:`~tfpanc.methods.cai.birnn_over_volume`: the BiRNN over a whole scan;
* :mod:`~tfpanc.methods.cai.evaluation`: Tables I-III and Fig. 5 of a fold;
* :mod:`~tfpanc.methods.cai.serving`: the SavedModel for TF Serving.

The models are in :mod:`tfpanc.models` (PNet-MSA, BiRNN head, U-Net, HNN),
the losses in :mod:`tfpanc.losses`; ``python -m tfpanc.cv_report`` pools folds.
"""

from tfpanc.methods import registry
from tfpanc.methods.cai.config import CaiConfig, CaiExportOptions, CaiPredictOptions

METHOD = registry.register(registry.Method(
    name="cai",
    config=CaiConfig,
    train="tfpanc.methods.cai.recipe:train",
    crop_multiple="tfpanc.methods.cai.networks:crop_multiple",
    predictor="tfpanc.methods.cai.predictor:load_predictor",
    evaluate="tfpanc.methods.cai.evaluation:evaluate_run",
    compare="tfpanc.methods.cai.comparison",
    export="tfpanc.methods.cai.serving:export_run",
    predict_options=CaiPredictOptions,
    export_options=CaiExportOptions,
    description="Cai et al., PNet-MSA + bidirectional ConvLSTM (CT and MRI)",
))
