"""The multitask paper's loss, Eq. 1: ``L = lambda1 L_CE + lambda2 L_REG``.

``y_pred`` is the network's one tensor ``(batch, x, y, z, C)``: channel 0 the
segmentation logit, channel 1 (with the skeleton task) the regressed
skeleton; ``y_true`` holds the mask in channel 0 and the skeleton target in
channel 1.

* ``L_CE`` (Eqs. 2-3), the two-class cross-entropy. One logit ``z`` through
  a sigmoid is the two-class softmax of logits ``(0, z)``, so binary
  cross-entropy on it is Eq. 2 exactly; averaged over voxels (Caffe's
  SoftmaxWithLoss normalisation).
* ``L_REG`` (Eq. 4), ``1/(2m) sum_i (p_i - g_i)^2``. We read ``m`` as the
  number of voxels of the batch (the paper calls it "the number of
  subjects", but its ``i`` runs over the same predictions as Eq. 2's), so
  both terms are per-voxel means and ``lambda1``, ``lambda2`` (by flag; the
  paper gives no values) weigh comparable quantities.

Example:
>>> import numpy as np
>>> y = np.zeros((1, 4, 4, 2, 2), "float32"); y[..., 0, 0] = 1; y[..., 1] = 0.5
>>> pred = np.zeros((1, 4, 4, 2, 2), "float32")   # logit 0 (p = 0.5), skeleton 0
>>> loss = MultitaskLoss(lambda_seg=1.0, lambda_reg=2.0)
>>> round(float(loss(y, pred)), 4)  # ln 2 + 2 * 0.5 * 0.25
0.9431
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfpanc")
class MultitaskLoss(keras.losses.Loss):
    """``lambda_seg * L_CE + lambda_reg * L_REG`` (Eq. 1; ``lambda_reg`` unused without a skeleton channel).

    Args:
        lambda_seg: lambda1.
        lambda_reg: lambda2.
    """

    def __init__(self, lambda_seg=1.0, lambda_reg=1.0, name="ce_reg", **kwargs):
        super().__init__(name=name, **kwargs)
        self.lambda_seg = float(lambda_seg)
        self.lambda_reg = float(lambda_reg)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
        axes = tuple(range(1, len(y_pred.shape)))
        ce = ops.binary_crossentropy(y_true[..., :1], y_pred[..., :1], from_logits=True)
        loss = self.lambda_seg * ops.mean(ce, axis=axes)
        if y_pred.shape[-1] > 1:
            squared = ops.square(y_pred[..., 1:2] - y_true[..., 1:2])
            loss = loss + self.lambda_reg * 0.5 * ops.mean(squared, axis=axes)
        return loss

    def get_config(self):
        return {**super().get_config(), "lambda_seg": self.lambda_seg, "lambda_reg": self.lambda_reg}
