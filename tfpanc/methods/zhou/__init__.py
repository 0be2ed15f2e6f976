"""Zhou et al.: coarse and fine FCN-8s on three views, joined by a fixed-point iteration.

Where each part of the paper lives:

* :mod:`~tfpanc.methods.zhou.config`: its flags, defaults and validation;
* :mod:`~tfpanc.methods.zhou.recipe`: the six models of a fold and the
  pipeline record;
* :mod:`~tfpanc.methods.zhou.fixed_point`: Algorithm 1 (coarse vote, fine
  rounds, stopping rule, oracle box);
* :mod:`~tfpanc.methods.zhou.crops`: the fine models' crops;
* :mod:`~tfpanc.methods.zhou.predictor`: a pipeline on a volume;
* :mod:`~tfpanc.methods.zhou.serving`: the pipeline as a SavedModel for TF
  Serving (:mod:`~tfpanc.methods.zhou.random_pipeline`: a random one for tests);
* :mod:`~tfpanc.methods.zhou.evaluation` and
  :mod:`~tfpanc.methods.zhou.table1_rows`: Table 1;
  ``python -m tfpanc.methods.zhou.table1`` pools folds into it.

The model is :class:`tfpanc.models.FCN8s`.
"""

from tfpanc.methods import registry
from tfpanc.methods.zhou.config import ZhouConfig, ZhouExportOptions, ZhouPredictOptions

METHOD = registry.register(registry.Method(
    name="zhou",
    config=ZhouConfig,
    train="tfpanc.methods.zhou.recipe:train",
    crop_multiple="tfpanc.methods.zhou.config:crop_multiple",
    predictor="tfpanc.methods.zhou.predictor:load_predictor",
    evaluate="tfpanc.methods.zhou.evaluation:evaluate_run",
    compare="tfpanc.methods.zhou.comparison",
    export="tfpanc.methods.zhou.serving:export_run",
    predict_options=ZhouPredictOptions,
    export_options=ZhouExportOptions,
    description="Zhou et al., fixed-point coarse-to-fine FCN-8s on three views (MICCAI 2017)",
))
