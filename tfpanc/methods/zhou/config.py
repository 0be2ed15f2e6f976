"""Zhou et al.'s settings: the shared flags plus the six FCN-8s models and the fixed point."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfpanc.data.patches import VIEWS
from tfpanc.errors import InputError
from tfpanc.flags import SharedConfig, check_not_negative, check_positive, setting
from tfpanc.methods.slice_settings import SLICE_SIZE_HELP

STAGES = ("coarse", "fine")
MODEL_NAMES = tuple(f"{s}_{v}" for s in STAGES for v in VIEWS)


def check_rounds(max_rounds, stop_threshold):
    """The fixed point's T and R, wherever they are given (train, predict, Table 1); None = not given."""
    if max_rounds is not None and max_rounds < 0:
        raise InputError("--max_rounds", f"must not be negative, got {max_rounds}")
    if stop_threshold is not None and not 0.0 < stop_threshold <= 1.0:
        raise InputError("--stop_threshold", f"must be in (0, 1], got {stop_threshold}")


def fcn_multiple():
    from tfpanc.models import FCN8s

    return FCN8s.input_multiple()


def crop_multiple(info):
    """The registry's ``crop_multiple``: each axis is in-plane for two of the three views."""
    return (fcn_multiple(),) * 3


@dataclasses.dataclass(frozen=True)
class ZhouConfig(SharedConfig):
    """Validated zhou training settings (shared fields: :class:`tfpanc.flags.SharedConfig`).

    Example:
    >>> cfg = ZhouConfig(stage="coarse", view="axial", fine_size=64)
    >>> cfg.model, cfg.loss, "--num_units" in cfg.to_flagfile()
    ('fcn8s', 'dice', False)
    """

    MODELS = ("fcn8s",)
    LOSSES = ("dice", "jac", "ce", "cbce")

    method: str = setting("zhou", "Paper whose recipe to run.")
    view: str = setting("all", "Which view's model(s) to train; all: the three views.",
                        choices=VIEWS + ("all",))
    stage: str = setting("all", "coarse (whole slices), fine (pancreas box crops) or all.",
                         choices=STAGES + ("all",))
    slice_size: int = setting(0, SLICE_SIZE_HELP)
    fc_filters: int = setting(4096, "Channels of FCN-8s fc6/fc7 (VGG16: 4096).")
    dropout: float = setting(0.5, "Dropout after fc6 and fc7.")
    batch_norm: bool = setting(False, "BN after every FCN-8s trunk conv (VGG16-BN style) for training "
                                      "from scratch.")
    pretrained: str = setting("", "Optional local Keras VGG16 weights file to start the FCN-8s trunk from.")
    coarse_epochs: int = setting(10, "Epochs of each coarse model.")
    fine_epochs: int = setting(10, "Epochs of each fine model.")
    fine_learning_rate: float = setting(1e-4, "Adam learning rate of the fine models (--learning_rate: "
                                              "coarse).")
    min_pixels: int = setting(100, "Coarse models train on slices with at least this many pancreas pixels.")
    fine_margin_min: int = setting(0, "Smallest random crop margin (px).")
    fine_margin_max: int = setting(60, "Largest random crop margin (px).")
    fine_size: int = setting(0, "Square size fine training crops are centre-padded to; 0: per view, the "
                                "largest box plus margins, rounded up to a multiple of 32.")
    max_rounds: int = setting(10, "Fixed-point rounds T at test time.")
    stop_threshold: float = setting(0.95, "Stop when d(t) = DSC(Z(t-1), Z(t)) > R.")
    crop_margin: int = setting(30, "Test-time frame around each box (px).")

    def validate(self):
        super().validate()
        check_positive(self, ("fc_filters",))
        check_not_negative(self, ("coarse_epochs", "fine_epochs", "min_pixels", "fine_margin_min", "fine_size",
                                  "max_rounds", "crop_margin", "slice_size"))
        multiple = fcn_multiple()
        for name in ("slice_size", "fine_size"):
            if getattr(self, name) % multiple:
                raise InputError(f"--{name}", f"must be a multiple of {multiple} for FCN-8s, "
                                 f"got {getattr(self, name)}")
        if self.fine_margin_max < self.fine_margin_min:
            raise InputError("--fine_margin_max", f"must be at least --fine_margin_min={self.fine_margin_min}, "
                             f"got {self.fine_margin_max}")
        if not self.fine_learning_rate > 0:
            raise InputError("--fine_learning_rate", f"must be positive, got {self.fine_learning_rate}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError("--dropout", f"must be in [0, 1), got {self.dropout}")
        check_rounds(self.max_rounds, self.stop_threshold)
        if self.pretrained and not Path(self.pretrained).is_file():
            raise InputError(self.pretrained, "--pretrained weights file not found")


@dataclasses.dataclass(frozen=True)
class ZhouPredictOptions:
    """``predict``'s zhou flags: overrides of the pipeline's test-time settings."""

    max_rounds: int = setting(None, "Fixed-point rounds T; default: the pipeline's (10).", kind="integer")
    stop_threshold: float = setting(None, "Stop when d(t) > R; default: the pipeline's (0.95).", kind="float")

    def __post_init__(self):
        check_rounds(self.max_rounds, self.stop_threshold)


@dataclasses.dataclass(frozen=True)
class ZhouExportOptions(ZhouPredictOptions):
    """``export``'s zhou flags: T and R the SavedModel's fixed point runs with (predict's fields)."""
