"""Segmentation losses on logits: JAC (Cai Eq. 14), CE, class-balanced CE, soft Dice.

Every loss takes ``y_true`` in {0, 1} (or soft labels in [0, 1]) and
``y_pred`` logits of the same shape (``y_true`` may lack the trailing channel
axis), and is computed per sample over all non-batch axes; Keras then
averages over the batch. Probabilities come from a sigmoid; cross entropies
use ``softplus`` forms so large logits never produce ``log(0)``.

:func:`deep_supervision_loss` wraps any of them into the PNet-MSA/HNN
objective of Cai Eq. 4, ``L(Y_hat) + sum_k L(U_k)``, for models whose output
stacks ``[fused, side_1 .. side_K]`` on the last axis.

Example:
>>> import numpy as np
>>> y = np.zeros((2, 8, 8, 1), "float32"); y[:, 2:6, 2:6] = 1
>>> logits = np.where(y > 0, 20.0, -20.0).astype("float32")
>>> float(get_loss("jac")(y, logits)) < 1e-6
True
"""

from __future__ import annotations

import keras
from keras import ops

from tfpanc.errors import InputError


def align_labels(y_true, y_pred):
    """``(y_true, y_pred)`` as tensors of one dtype, ``y_true`` given the channel axis it may lack."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    if len(y_true.shape) == len(y_pred.shape) - 1:
        y_true = ops.expand_dims(y_true, -1)
    return y_true, y_pred


def _sample_sum(x):
    return ops.sum(x, axis=tuple(range(1, len(x.shape))))


def _sample_mean(x):
    return ops.mean(x, axis=tuple(range(1, len(x.shape))))


class _LogitLoss(keras.losses.Loss):
    """Base: subclasses implement ``per_sample(y_true, logits) -> (batch,)``."""

    def call(self, y_true, y_pred):
        y_true, y_pred = align_labels(y_true, y_pred)
        return self.per_sample(y_true, y_pred)


@keras.saving.register_keras_serializable(package="tfpanc")
class JaccardLoss(_LogitLoss):
    """Relaxed Jaccard loss of Cai et al. Eq. 14, per sample.

    ``1 - (sum_{Y+} p + s) / (|Y+| + sum_{Y-} p + s)`` with ``p = sigmoid(logit)``.
    For binary labels the denominator is the soft union ``sum y + sum p - sum y p``,
    which is the form computed (it also accepts soft labels). The smoothing
    ``s`` (not in the paper) keeps an empty mask defined and still penalises
    false positives there: the loss is then ``sum p / (sum p + s)``.

    Args:
        smooth: s, added to numerator and denominator.
    """

    def __init__(self, smooth=1.0, name="jac", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)

    def per_sample(self, y_true, logits):
        p = ops.sigmoid(logits)
        intersection = _sample_sum(y_true * p)
        union = _sample_sum(y_true) + _sample_sum(p) - intersection
        return 1.0 - (intersection + self.smooth) / (union + self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="tfpanc")
class BinaryCrossEntropyLoss(_LogitLoss):
    """Pixel-wise binary cross entropy from logits (CE of Cai Table I), mean per sample."""

    def __init__(self, name="ce", **kwargs):
        super().__init__(name=name, **kwargs)

    def per_sample(self, y_true, logits):
        # -log sigmoid(x) = softplus(-x), -log(1 - sigmoid(x)) = softplus(x)
        ce = y_true * ops.softplus(-logits) + (1.0 - y_true) * ops.softplus(logits)
        return _sample_mean(ce)


@keras.saving.register_keras_serializable(package="tfpanc")
class ClassBalancedCrossEntropyLoss(_LogitLoss):
    """Class-balanced cross entropy of HED (Xie & Tu 2015, Eq. 2), per sample.

    ``-beta sum_{Y+} log p - (1 - beta) sum_{Y-} log(1 - p)`` with
    ``beta = |Y-| / |Y|`` computed per sample, divided by the pixel count
    ``|Y|`` so its scale matches CE. As in HED, a sample without foreground has
    ``1 - beta = 0``: it contributes nothing (zero loss and zero gradient).
    """

    def __init__(self, name="cbce", **kwargs):
        super().__init__(name=name, **kwargs)

    def per_sample(self, y_true, logits):
        n = _sample_sum(ops.ones_like(y_true))
        positives = _sample_sum(y_true)
        beta = (n - positives) / n  # fraction of negatives
        pos_term = _sample_sum(y_true * ops.softplus(-logits))
        neg_term = _sample_sum((1.0 - y_true) * ops.softplus(logits))
        return (beta * pos_term + (1.0 - beta) * neg_term) / n


@keras.saving.register_keras_serializable(package="tfpanc")
class DiceLoss(_LogitLoss):
    """Soft Dice loss ``1 - (2 sum y p + s) / (sum y + sum p + s)``, per sample.

    Args:
        smooth: s; keeps empty masks defined (loss ``sum p / (sum p + s)`` there).
    """

    def __init__(self, smooth=1.0, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)

    def per_sample(self, y_true, logits):
        p = ops.sigmoid(logits)
        intersection = _sample_sum(y_true * p)
        total = _sample_sum(y_true) + _sample_sum(p)
        return 1.0 - (2.0 * intersection + self.smooth) / (total + self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="tfpanc")
class DeepSupervisionLoss(_LogitLoss):
    """Cai Eq. 4: ``L(Y_hat) + sum_k L(U_k)`` over the stacked output channels.

    Every channel of ``y_pred`` (fused first, then the side maps) is scored
    against the same ``y_true`` (one channel) with ``base``, and the per-sample
    values are summed.

    Args:
        base: a loss from this module (instance, or name for :func:`get_loss`).
    """

    def __init__(self, base="jac", name=None, **kwargs):
        base = get_loss(base) if isinstance(base, str) else base
        if isinstance(base, dict):
            base = keras.saving.deserialize_keras_object(base)
        if not isinstance(base, _LogitLoss):
            raise TypeError(f"base must be a tfpanc loss, got {type(base).__name__}")
        super().__init__(name=name or f"deep_supervision_{base.name}", **kwargs)
        self.base = base

    def per_sample(self, y_true, logits):
        y_true = y_true[..., :1]
        total = 0.0
        for c in range(logits.shape[-1]):
            total = total + self.base.per_sample(y_true, logits[..., c:c + 1])
        return total

    def get_config(self):
        return {**super().get_config(), "base": keras.saving.serialize_keras_object(self.base)}


LOSSES = {
    "jac": JaccardLoss,
    "ce": BinaryCrossEntropyLoss,
    "cbce": ClassBalancedCrossEntropyLoss,
    "dice": DiceLoss,
}


def get_loss(name, **kwargs):
    """A loss by name.

    Args:
        name: "jac", "ce", "cbce" or "dice" (case-insensitive).
        **kwargs: passed to the loss class (e.g. ``smooth``).

    Returns:
        the loss instance (works on logits).

    Raises:
        InputError: unknown name.

    Example:
    >>> get_loss("JAC").name
    'jac'
    """
    key = str(name).lower()
    if key not in LOSSES:
        raise InputError(None, f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[key](**kwargs)


def deep_supervision_loss(base_loss="jac"):
    """Wraps a loss into the deeply supervised objective of Cai Eq. 4.

    Args:
        base_loss: loss name or instance from this module.

    Returns:
        a :class:`DeepSupervisionLoss` to pass to ``model.compile`` for models
        that output ``[fused, side_1 .. side_K]`` (PNetMSA, HNN with
        ``side_outputs=True``).

    Example:
    >>> deep_supervision_loss("ce").name
    'deep_supervision_ce'
    """
    return DeepSupervisionLoss(base_loss)
