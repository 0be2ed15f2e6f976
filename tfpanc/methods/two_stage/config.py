"""The two-stage 3D U-Net's settings: the shared flags plus the stages, boxes and center loss."""

from __future__ import annotations

import dataclasses

from tfpanc.errors import InputError
from tfpanc.flags import SharedConfig, check_not_negative, check_positive, positive_triple, setting

STAGES = ("coarse", "fine")
NORMS = ("batch", "group", "instance")




@dataclasses.dataclass(frozen=True)
class TwoStageConfig(SharedConfig):
    """Validated two_stage training settings (shared fields: :class:`tfpanc.flags.SharedConfig`).

    Example:
    >>> cfg = TwoStageConfig(depth=3, filters=8)
    >>> cfg.model, cfg.loss, cfg.decimation, "--view" in cfg.to_flagfile()
    ('unet3d', 'dice_center', 4, False)
    """

    MODELS = ("unet3d",)
    LOSSES = ("dice_center",)

    method: str = setting("two_stage", "Paper whose recipe to run.")
    stage: str = setting("all", "coarse (the 1/R volume), fine (full-resolution ROI patches) or all.",
                         choices=STAGES + ("all",))
    depth: int = setting(4, "3D U-Net poolings (levels - 1); the input must be a multiple of 2**depth.")
    norm: str = setting("batch", "Normalisation after each 3x3x3 conv.", choices=NORMS)
    decimation: int = setting(4, "R: the coarse stage sees the volume decimated R times along every axis.")
    coarse_epochs: int = setting(100, "Epochs of the coarse 3D U-Net.")
    fine_epochs: int = setting(100, "Epochs of the fine 3D U-Net.")
    fine_learning_rate: float = setting(1e-3, "Peak Adam learning rate of the fine stage (--learning_rate: "
                                              "coarse).")
    fine_patch: tuple = setting((128, 128, 64), "Most voxels x,y,z of a fine training patch; ROIs (ground-truth "
                                                "box + --fine_margin) smaller than this are taken whole (padded "
                                                "to the network's multiple), larger ones as random patches of "
                                                "this size inside them.")
    fine_margin: int = setting(10, "Voxels added to each side of the ground-truth box for fine training "
                                   "(paper: 10) and to box 2 at test time.")
    coarse_box_margin: int = setting(2, "Voxels added to each side of the coarse (1/R) mask's box for box 1 "
                                        "(paper: 2).")
    center_gamma: float = setting(1e-3, "gamma of L_Dice + gamma L_Center (Eq. 1); 0 trains with Dice alone.")
    center_epochs: int = setting(50, "Epochs trained with the center term (paper: 50), then gamma = 0.")

    def validate(self):
        super().validate()
        check_positive(self, ("depth", "decimation", "fine_margin"))
        check_not_negative(self, ("coarse_epochs", "fine_epochs", "coarse_box_margin", "center_epochs"))
        positive_triple("fine_patch", self.fine_patch)
        multiple = 2 ** self.depth
        if any(p % multiple for p in self.fine_patch):
            raise InputError("--fine_patch", f"must be multiples of 2**depth = {multiple}, got "
                             f"{','.join(map(str, self.fine_patch))}")
        if not self.fine_learning_rate > 0:
            raise InputError("--fine_learning_rate", f"must be positive, got {self.fine_learning_rate}")
        if self.center_gamma < 0:
            raise InputError("--center_gamma", f"must not be negative, got {self.center_gamma}")


@dataclasses.dataclass(frozen=True)
class TwoStageExportOptions:
    """``export``'s two_stage flags (used by :func:`tfpanc.methods.two_stage.serving.export_run`).

    Example:
    >>> TwoStageExportOptions(window_batch=2).window_batch
    2
    """

    window_batch: int = setting(None, "Fine windows per network call in the served graph (memory against "
                                      "speed; the result is the same); default 1.", kind="integer")

    def __post_init__(self):
        if self.window_batch is not None and self.window_batch < 1:
            raise InputError("--window_batch", f"must be at least 1, got {self.window_batch}")
