"""Progressive growth of PNet-MSA (Sec. III-A): train unit 1, add unit 2, ...

The paper trains PNet-MSA "layer by layer from shallow to deep": unit k is
added, with fresh MSRA initialisation, once the loss of unit k-1 has
converged. :func:`grow` builds the (K+1)-unit model and copies every weight of
the K-unit one into the layer of the same name (the names are fixed per unit,
see :class:`~tfpanc.models.PNetMSA`), BN moving statistics included.

The new fusion weight ``w_{K+1}`` starts at 0, so right after growing the
fused output equals the K-unit model's fused output (growth does not undo
what was learnt); ``w_{K+1}`` becomes non-zero as soon as training updates
it, and unit K+1 learns from the start through its own deep-supervision loss
``L(U_{K+1})``.
"""

from __future__ import annotations

import numpy as np

from tfpanc.models.pnet_msa import PNetMSA


def grow(model, new_fuse_weight=0.0):
    """Returns a PNetMSA with one more unit, carrying over all of ``model``'s weights.

    Args:
        model: a :class:`PNetMSA` with K units.
        new_fuse_weight: starting value of ``w_{K+1}`` (default 0: the grown
            model's fused output equals the old one until training moves it).

    Returns:
        a new :class:`PNetMSA` with K+1 units, same filters/input/outputs
        settings; unit K+1's layers keep their fresh He initialisation.

    Example:
    >>> m1 = PNetMSA(num_units=1, filters=4)
    >>> grow(m1).num_units
    2
    """
    if not isinstance(model, PNetMSA):
        raise TypeError(f"grow() needs a PNetMSA, got {type(model).__name__}")
    config = model.get_config()
    config["num_units"] = model.num_units + 1
    grown = PNetMSA.from_config(config)
    for layer in model.layers:
        if not layer.weights:
            continue
        target = grown.get_layer(layer.name)  # raises if a name went missing
        old = layer.get_weights()
        if [w.shape for w in old] != [w.shape for w in target.get_weights()]:
            raise ValueError(f"layer {layer.name}: weight shapes differ after growth")
        target.set_weights(old)
    new_weight = grown.get_layer(f"unit{grown.num_units}_fuse_weight")
    new_weight.set_weights([np.asarray(new_fuse_weight, dtype=new_weight.weights[0].dtype)])
    return grown
