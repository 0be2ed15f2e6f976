"""The two-stage paper's loss, Eq. 1: ``L = L_Dice + gamma * L_Center``.

Both terms take ``y_true`` in {0, 1} and ``y_pred`` logits of one channel,
``(batch, x, y, z, 1)`` (``y_true`` may lack the channel axis), on the
backend's ops only (``keras.ops``).

**Dice, two classes (our reading).** The paper's Dice formula is garbled in
the text; the part that survives holds the background term
``sum_i (1 - y_i)(1 - yhat_i)``, which only a Dice over both classes has. We
take the soft Dice of the foreground and of the background, averaged:
``L_Dice = 1 - 1/2 [ 2 sum y p / (sum y + sum p) + 2 sum (1-y)(1-p) /
(sum (1-y) + sum (1-p)) ]`` per sample, ``p = sigmoid(logit)``, with a
smoothing of 1 in numerator and denominator (V-Net style) so that empty
masks are defined.

**Center loss.** For each axial slice d (the paper's D is the depth, our
``z``), ``f(Y_d)`` is the mass-weighted mean ``(u, v)`` = ``(x, y)`` voxel
coordinate of the slice, the mass ``zeta_d = sum_uv Y_d(u, v)`` normalising
it (the paper's "spatial normalization factor"); ``L_Center = sum_d
|f(Y_d) - f(Yhat_d)|`` with ``|.|`` the Euclidean length (a disc shifted by
``(3, 4)`` voxels costs 5 per slice) and ``Yhat`` the predicted
probabilities. A slice where either mask is (nearly) empty has no centre: it
contributes 0 (the label's mass must reach half a voxel and the prediction's
``1e-3`` voxel; the indicator carries no gradient). The sum is over slices,
as in Eq. 1, not a mean, and in voxels: ``gamma`` (paper ``1e-3`` for the
first 50 epochs, then 0) sets the scale.

Example:
>>> import numpy as np
>>> y = np.zeros((1, 16, 16, 4, 1), "float32"); y[:, 4:8, 4:8] = 1
>>> logits = np.where(np.roll(y, (3, 4), axis=(1, 2)) > 0, 30.0, -30.0).astype("float32")
>>> round(float(CenterLoss()(y, logits)), 3)  # 4 slices, each off by 5 voxels
20.0
"""

from __future__ import annotations

import keras
from keras import ops

from tfpanc.losses import align_labels

_LABEL_MASS = 0.5
_PRED_MASS = 1e-3


def soft_dice_two_class(y_true, p, smooth=1.0):
    """``1 - mean(foreground Dice, background Dice)`` per sample; ``p`` are probabilities."""
    axes = tuple(range(1, len(p.shape)))
    fg = (2.0 * ops.sum(y_true * p, axes) + smooth) / (ops.sum(y_true, axes) + ops.sum(p, axes) + smooth)
    q, n = 1.0 - p, 1.0 - y_true
    bg = (2.0 * ops.sum(n * q, axes) + smooth) / (ops.sum(n, axes) + ops.sum(q, axes) + smooth)
    return 1.0 - 0.5 * (fg + bg)


def slice_centres(mask):
    """``(centres (B, Z, 2), mass (B, Z))``: each axial slice's mass-weighted mean (x, y) voxel."""
    m = mask[..., 0] if len(mask.shape) == 5 else mask  # (B, X, Y, Z)
    mass = ops.sum(m, axis=(1, 2))
    xs = ops.cast(ops.arange(ops.shape(m)[1]), m.dtype)
    ys = ops.cast(ops.arange(ops.shape(m)[2]), m.dtype)
    mx = ops.sum(ops.sum(m, axis=2) * xs[None, :, None], axis=1)
    my = ops.sum(ops.sum(m, axis=1) * ys[None, :, None], axis=1)
    safe = ops.maximum(mass, 1e-6)
    return ops.stack([mx / safe, my / safe], axis=-1), mass


def center_loss(y_true, p):
    """``sum_d |f(Y_d) - f(P_d)|`` per sample over the slices where both masks have mass."""
    c_true, m_true = slice_centres(y_true)
    c_pred, m_pred = slice_centres(p)
    both = ops.stop_gradient(ops.cast((m_true >= _LABEL_MASS) & (m_pred >= _PRED_MASS), p.dtype))
    # The epsilon keeps the gradient of the length finite where the centres coincide.
    length = ops.sqrt(ops.sum(ops.square(c_true - c_pred), axis=-1) + 1e-8)
    return ops.sum(both * length, axis=1)


@keras.saving.register_keras_serializable(package="tfpanc")
class TwoClassDiceLoss(keras.losses.Loss):
    """The Dice term of Eq. 1 on logits (see the module docstring).

    Args:
        smooth: added to each Dice's numerator and denominator.
    """

    def __init__(self, smooth=1.0, name="dice2", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        y_true, logits = align_labels(y_true, y_pred)
        return soft_dice_two_class(y_true, ops.sigmoid(logits), self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="tfpanc")
class CenterLoss(keras.losses.Loss):
    """The center term of Eq. 1 on logits (see the module docstring)."""

    def __init__(self, name="center", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true, logits = align_labels(y_true, y_pred)
        return center_loss(y_true, ops.sigmoid(logits))


@keras.saving.register_keras_serializable(package="tfpanc")
class DiceCenterLoss(keras.losses.Loss):
    """``L_Dice + gamma * L_Center`` (Eq. 1).

    Args:
        gamma: weight of the center term (0 drops it, and its cost).
        smooth: the Dice smoothing.
    """

    def __init__(self, gamma=1e-3, smooth=1.0, name="dice_center", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = float(gamma)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        y_true, logits = align_labels(y_true, y_pred)
        p = ops.sigmoid(logits)
        loss = soft_dice_two_class(y_true, p, self.smooth)
        if self.gamma:
            loss = loss + self.gamma * center_loss(y_true, p)
        return loss

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "smooth": self.smooth}
