"""The multitask method's settings: preprocessing, C1, C2 (multitask dense 3D U-Net), windows, CRF.

**Sizes are ``x,y,z`` voxels of the resampled grid.** The paper writes them
depth x height x width (its 16x64x64 patch, 4x16x16 step and 128x224x224
region are our 64,64,16, 16,16,4 and 224,224,128); :func:`from_paper_order`
and :func:`paper_label` convert, and the tables and figures label sizes the
paper's way. At ``--spacing=1,1,1`` (the paper's) a voxel is a millimetre.
"""

from __future__ import annotations

import dataclasses

from tfpanc.errors import InputError
from tfpanc.flags import (SharedConfig, check_not_negative, check_positive, check_unit_interval,
                          positive_triple, setting)

STAGES = ("c1", "c2")
OPTIMIZERS = ("sgd", "adam")
NORMS = ("none", "batch", "instance")


def from_paper_order(dhw):
    """The paper's depth x height x width -> tfpanc's ``(x, y, z)``.

    Example:
    >>> from_paper_order((16, 64, 64)), from_paper_order((128, 224, 224))
    ((64, 64, 16), (224, 224, 128))
    """
    d, h, w = (int(v) for v in dhw)
    return (w, h, d)


def paper_label(xyz):
    """``(x, y, z)`` written the paper's way, ``"DxHxW"``.

    Example:
    >>> paper_label((64, 64, 16))
    '16x64x64'
    """
    x, y, z = (int(v) for v in xyz)
    return f"{z}x{y}x{x}"


def parse_paper_size(text, flag):
    """``"16x64x64"`` (the paper's order) -> ``(64, 64, 16)``; InputError naming ``flag`` otherwise."""
    try:
        values = tuple(int(v) for v in str(text).lower().split("x"))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise InputError(flag, f"expected DxHxW like 4x16x16 (the paper's order), got {text!r}")
    return from_paper_order(values)




@dataclasses.dataclass(frozen=True)
class MultitaskConfig(SharedConfig):
    """Validated multitask training settings (shared fields: :class:`tfpanc.flags.SharedConfig`).

    ``--filters`` is C2's first-level width, ``--learning_rate`` the initial
    rate of both networks.

    Example:
    >>> cfg = MultitaskConfig(filters=8)
    >>> cfg.patch, paper_label(cfg.patch), cfg.step, cfg.region, cfg.optimizer
    ((64, 64, 16), '16x64x64', (16, 16, 4), (224, 224, 128), 'sgd')
    """

    # Written to flags.cfg only when set: runs recorded before the flag existed resume unchanged.
    RECORDED_WHEN_SET = SharedConfig.RECORDED_WHEN_SET + ("c1_scale",)

    MODELS = ("multitask_dense_unet3d",)
    LOSSES = ("ce_reg",)

    method: str = setting("multitask", "Paper whose recipe to run.")
    stage: str = setting("all", "c1 (1/4 localisation), c2 (multitask dense 3D U-Net) or all.",
                         choices=STAGES + ("all",))
    spacing: tuple = setting((1.0, 1.0, 1.0), "Voxel size x,y,z in mm every case is resampled to (paper: 1,1,1).")
    body_threshold: float = setting(-500.0, "HU above which a voxel is body; the volume is cropped to the box "
                                            "of the largest connected body component.")
    skeleton_sigma: float = setting(2.0, "Gaussian sigma in mm smoothing the skeleton target (the paper "
                                         "gives none).")
    # C1
    c1_decimation: int = setting(4, "C1 sees the resampled volume decimated this many times per axis (paper 4).")
    c1_depth: int = setting(3, "C1 3D U-Net poolings (paper: three down / three up blocks).")
    c1_filters: int = setting(32, "C1 first-level channels (the paper gives none).")
    c1_convs: int = setting(2, "3x3x3 convs per C1 block (paper: one or two).")
    c1_patch: tuple = setting((64, 64, 16), "C1 training patch x,y,z on the decimated volume (paper 16x64x64).")
    c1_epochs: int = setting(50, "C1 epochs.")
    c1_positive_fraction: float = setting(0.0, "Share of C1 patches centred on a pancreas voxel; the rest are "
                                               "uniform over the volume (paper: uniform, 0).")
    c1_scale: float = setting(0.0, "C1 scale augmentation: each axis of a training patch zoomed by its own factor "
                                   "drawn log-uniformly in [1/(1+s), 1+s] (0: none, as the paper, which names "
                                   "no augmentation).")
    c1_opening: int = setting(1, "Radius in voxels (of the resampled grid) of the binary opening that cleans "
                                 "C1's upsampled mask before its box is taken; 0: none.")
    # C2
    levels: int = setting(5, "C2 encoder blocks (the last is the bottleneck): inputs are multiples of "
                             "2**(levels-1).")
    growth: int = setting(8, "Channels each densely connected conv adds (the paper gives none).")
    convs_per_block: int = setting(2, "3x3x3 convs per C2 block.")
    dense: bool = setting(True, "Dense connections inside C2's blocks (off: plain convs; Fig. 11).")
    feature_consistency: bool = setting(True, "The three feature-consistency modules after the finest skip "
                                              "concatenations (Fig. 13).")
    skeleton: bool = setting(True, "Regress the pancreas skeleton as the second task (off: single-task).")
    lambda_seg: float = setting(1.0, "lambda1 of L = lambda1 L_CE + lambda2 L_REG (Eq. 1).")
    lambda_reg: float = setting(1.0, "lambda2 of Eq. 1 (the paper gives no values).")
    norm: str = setting("none", "Normalisation after each conv of both networks (paper: none).", choices=NORMS)
    patch: tuple = setting((64, 64, 16), "C2 patch x,y,z (paper 16x64x64; Fig. 8: 16x32x32, 16x128x128).")
    region: tuple = setting((224, 224, 128), "Region x,y,z around C1's box centre passed to C2 (paper "
                                              "128x224x224); C2 trains on patches inside the same region "
                                              "around the ground-truth box.")
    step: tuple = setting((16, 16, 4), "Sliding-window step x,y,z at test time (paper 4x16x16; Fig. 9).")
    positive_fraction: float = setting(0.0, "Share of C2 patches centred on a pancreas voxel; the rest are "
                                            "uniform in the region (paper: uniform, 0).")
    c2_epochs: int = setting(50, "C2 epochs.")
    weighting: str = setting("constant", "Averaging of overlapping windows: constant (the paper's mean) or "
                                         "gaussian.", choices=("constant", "gaussian"))
    # Optimisation
    optimizer: str = setting("sgd", "sgd (paper: momentum 0.9, step decay by 0.1 down to --final_learning_rate) "
                                    "or adam.", choices=OPTIMIZERS)
    momentum: float = setting(0.9, "SGD momentum (paper 0.9).")
    final_learning_rate: float = setting(1e-6, "Last step of the SGD step decay (paper 1e-6).")
    # CRF
    crf: bool = setting(True, "3D fully connected CRF on C2's probabilities (Sec. II-C).")
    crf_iterations: int = setting(5, "Mean-field iterations of the CRF.")
    crf_w1: float = setting(3.0, "Weight w1 of the smoothness kernel.")
    crf_sigma_alpha: tuple = setting((1.0, 1.0, 1.0), "Smoothness kernel sigma_alpha x,y,z in mm.")
    crf_w2: float = setting(1.0, "Weight w2 of the appearance kernel.")
    crf_sigma_beta: tuple = setting((5.0, 5.0, 5.0), "Appearance kernel sigma_beta x,y,z in mm.")
    crf_sigma_gamma: float = setting(10.0, "Appearance kernel intensity sigma_gamma in HU.")

    def __post_init__(self):
        for name, kind in (("spacing", float), ("c1_patch", int), ("patch", int), ("region", int),
                           ("step", int), ("crf_sigma_alpha", float), ("crf_sigma_beta", float)):
            object.__setattr__(self, name, positive_triple(name, getattr(self, name), kind))
        super().__post_init__()

    def validate(self):
        super().validate()
        check_positive(self, ("c1_decimation", "c1_depth", "c1_filters", "levels", "growth", "convs_per_block"))
        check_not_negative(self, ("c1_epochs", "c2_epochs", "c1_opening", "c1_scale"))
        if self.c1_convs not in (1, 2):
            raise InputError("--c1_convs", f"must be 1 or 2 (the paper's C1 blocks), got {self.c1_convs}")
        if self.levels < 2:
            raise InputError("--levels", f"must be at least 2, got {self.levels}")
        for name, multiple in (("c1_patch", 2 ** self.c1_depth), ("patch", 2 ** (self.levels - 1))):
            values = getattr(self, name)
            if any(v % multiple for v in values):
                raise InputError(f"--{name}", f"must be multiples of {multiple} (the network's poolings), got "
                                 f"{','.join(map(str, values))}")
        if any(p > r for p, r in zip(self.patch, self.region)):
            raise InputError("--region", f"must be at least --patch={','.join(map(str, self.patch))} per axis")
        if self.skeleton_sigma <= 0:
            raise InputError("--skeleton_sigma", f"must be positive, got {self.skeleton_sigma}")
        if self.lambda_seg <= 0 or self.lambda_reg < 0:
            raise InputError("--lambda_seg" if self.lambda_seg <= 0 else "--lambda_reg",
                             "lambda_seg must be positive and lambda_reg not negative")
        for name in ("positive_fraction", "c1_positive_fraction"):
            check_unit_interval(name, getattr(self, name), low_open=False, high_open=False)
        check_unit_interval("momentum", self.momentum, low_open=False)
        if not 0 < self.final_learning_rate <= self.learning_rate:
            raise InputError("--final_learning_rate", f"must be in (0, --learning_rate], got "
                             f"{self.final_learning_rate}")
        self.crf_settings().validate()

    def crf_settings(self):
        from tfpanc.methods.multitask.crf import CRFSettings

        return CRFSettings(iterations=self.crf_iterations, w1=self.crf_w1, sigma_alpha_mm=self.crf_sigma_alpha,
                           w2=self.crf_w2, sigma_beta_mm=self.crf_sigma_beta, sigma_gamma=self.crf_sigma_gamma)


@dataclasses.dataclass(frozen=True)
class MultitaskPredictOptions:
    """``predict``'s multitask flags: test-time overrides of the run's settings."""

    step: tuple = setting(None, "Sliding-window step x,y,z; default: the run's (paper 4x16x16 = 16,16,4).",
                          kind="list")
    crf: bool = setting(None, "Apply the 3D dense CRF; default: the run's --crf.", kind="bool")
    window_batch: int = setting(None, "C2 windows per network call; default 16.", kind="integer")

    def __post_init__(self):
        if self.step is not None:
            object.__setattr__(self, "step", positive_triple("step", self.step))
        if self.window_batch is not None and self.window_batch < 1:
            raise InputError("--window_batch", f"must be at least 1, got {self.window_batch}")


@dataclasses.dataclass(frozen=True)
class MultitaskExportOptions:
    """``export``'s multitask flags (used by :func:`tfpanc.methods.multitask.serving.export_run`).

    The same names, types and checks as :class:`MultitaskPredictOptions`'
    ``step`` and ``window_batch``; there is no ``crf``: the CRF does not run
    in the graph (the served answer is ``predict --nocrf``'s).

    Example:
    >>> MultitaskExportOptions(step=(8, 8, 4), window_batch=4).step
    (8, 8, 4)
    """

    step: tuple = setting(None, "Sliding-window step x,y,z baked into the served graph; default: the run's "
                                "(paper 4x16x16 = 16,16,4).", kind="list")
    window_batch: int = setting(None, "C2 windows per network call in the served graph (memory against speed; "
                                      "the result is the same); default 16.", kind="integer")

    # The same checks as predict's, so a flag means the same in both commands.
    __post_init__ = MultitaskPredictOptions.__post_init__
