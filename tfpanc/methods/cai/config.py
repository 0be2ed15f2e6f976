"""Cai et al.'s settings: the shared flags plus PNet-MSA growth and the BiRNN stage."""

from __future__ import annotations

import dataclasses

from tfpanc.errors import InputError
from tfpanc.flags import SharedConfig, check_not_negative, check_positive, check_unit_interval, setting
from tfpanc.methods.slice_settings import SLICE_SIZE_HELP

SYNTHETIC_SETTINGS = ("train_images", "synthetic_steps", "synthetic_bank", "synthetic_anatomies", "shape_dir",
                      "shape_label", "synthetic_cache_fraction", "single_slice_fraction",
                      "synthetic_intensity_fraction")


def check_synthetic_settings(cfg):
    """The synthetic-training flags: known steps, a shape folder only with the shapes step, a 2D CNN."""
    from tfpanc.data.synthetic.slice_generator import parse_steps

    steps = parse_steps(cfg.synthetic_steps)
    check_unit_interval("single_slice_fraction", cfg.single_slice_fraction, low_open=False, high_open=False)
    check_unit_interval("synthetic_intensity_fraction", cfg.synthetic_intensity_fraction, low_open=False,
                        high_open=False)
    if cfg.synthetic_intensity_fraction < 1 and (cfg.train_images != "synthetic" or "intensity" not in steps):
        raise InputError("--synthetic_intensity_fraction", "applies only with --train_images=synthetic and "
                         "the intensity step in --synthetic_steps")
    if cfg.train_images != "synthetic":
        if cfg.single_slice_fraction:
            raise InputError("--single_slice_fraction", "applies only with --train_images=synthetic")
        return
    if cfg.synthetic_anatomies < 1:
        raise InputError("--synthetic_anatomies", f"must be at least 1, got {cfg.synthetic_anatomies}")
    if cfg.shape_label < 0 or (cfg.shape_label and not cfg.shape_dir):
        raise InputError("--shape_label", "must be a label value >= 0 of the maps in --shape_dir")
    if cfg.shape_dir and "shapes" not in steps:
        raise InputError("--shape_dir", "applies only with the shapes step in --synthetic_steps")
    if cfg.model == "pnet_msa_birnn":
        raise InputError("--model", "the BiRNN stage trains on cached slice runs; with --train_images=synthetic "
                         "use pnet_msa, unet or hnn")
    check_unit_interval("synthetic_cache_fraction", cfg.synthetic_cache_fraction, low_open=False,
                        high_open=False)

MODELS = ("pnet_msa_birnn", "pnet_msa", "unet", "hnn")
LOSSES = ("jac", "ce", "cbce", "dice")


@dataclasses.dataclass(frozen=True)
class CaiConfig(SharedConfig):
    """Validated cai training settings (shared fields: :class:`tfpanc.flags.SharedConfig`).

    Example:
    >>> cfg = CaiConfig(model="pnet_msa", num_units=3, slice_size=64)
    >>> cfg.loss, "--num_units=3" in cfg.to_flagfile(), "--max_rounds" in cfg.to_flagfile()
    ('jac', True, False)
    """

    MODELS = MODELS
    LOSSES = LOSSES
    # These came later: recorded only when set, so earlier runs' flag files still match.
    RECORDED_WHEN_SET = SharedConfig.RECORDED_WHEN_SET + SYNTHETIC_SETTINGS + ("pnet_final_learning_rate",
                                                                               "pnet_final_weight_average",
                                                                               "unet_batch_norm")

    method: str = setting("cai", "Paper whose recipe to run.")
    num_units: int = setting(5, "PNet-MSA units K (grown from 1).")
    slice_size: int = setting(0, SLICE_SIZE_HELP)
    epochs_per_unit: int = setting(10, "Most epochs spent at each K before growing.")
    final_epochs: int = setting(10, "Epochs of the whole network after growth.")
    pnet_final_learning_rate: float = setting(0.0, "Peak Adam learning rate of that final phase (pnet_final); "
                                                   "0: --learning_rate. Lower it where the fused output "
                                                   "collapses to all background in that phase.")
    pnet_final_weight_average: float = setting(0.0, "Momentum per step of an exponential moving average of the "
                                                    "weights over that final phase, which becomes its weights "
                                                    "(0: none; 0.998 spans about its last 500 steps).")
    unet_batch_norm: bool = setting(False, "BatchNormalization after each conv of --model=unet (off: the "
                                           "U-Net paper's plain convs, which stayed at validation DSC 0 on "
                                           "the quick phantom and on synthetic images).")
    growth_patience: int = setting(2, "Epochs without min-delta improvement of L_K before unit K+1 is added.")
    growth_min_delta: float = setting(0.005, "Smallest loss drop that counts.")
    rnn_length: int = setting(8, "Consecutive slices per BiRNN training sequence.")
    rnn_epochs: int = setting(5, "End-to-end CNN+BiRNN fine-tuning epochs.")
    rnn_batch_size: int = setting(2, "Sequences per batch.")
    rnn_learning_rate: float = setting(1e-4, "Peak Adam learning rate of the BiRNN stage (same schedule).")
    positive_fraction: float = setting(0.5, "Probability that a sampled slice holds pancreas (oversampling).")
    train_images: str = setting("cache", "What the CNN trains on: cache (the --data_dir cases) or synthetic "
                                         "(rendered on the fly from an anatomy bank, tfpanc.data.synthetic; "
                                         "validation and the BiRNN stage still use cached cases).",
                                choices=("cache", "synthetic"))
    synthetic_steps: str = setting("intensity,resolution,deformation",
                                   "Randomisation steps of --train_images=synthetic, comma list of "
                                   "intensity, hu, texture, window, resolution, deformation, lean, shapes "
                                   "(contrast instead of intensity: the contrast-phase HU prior alone, "
                                   "without the random half; hu and texture: intensity split in two, its HU "
                                   "draws on the phantom's texture and its texture draws on the phantom's "
                                   "HU; window: a random gain and offset of every HU value alone; lean: the "
                                   "organs reach 0-8 mm into the fat around them; shapes: "
                                   "procedural gland variety, and the glands of --shape_dir when given), "
                                   "or none (the phantom's own look).")
    synthetic_bank: str = setting("cache/synthetic_bank", "Anatomy bank folder; built there on first use.")
    synthetic_anatomies: int = setting(40, "Phantom anatomies in the bank.")
    shape_dir: str = setting("", "Folder of NIfTI pancreas label maps replacing the bank's phantom pancreas "
                                 "(with the shapes step); nothing of it is copied into the run.")
    shape_label: int = setting(0, "Value of the pancreas in --shape_dir's maps (multi-organ labels); 0: any "
                                  "nonzero voxel (pancreas-only maps).")
    synthetic_cache_fraction: float = setting(0.0, "Share of --train_images=synthetic samples drawn from "
                                                   "the cached training cases instead.")
    single_slice_fraction: float = setting(0.0, "Share of --train_images=synthetic samples (cached ones "
                                                "included) whose three input slices are the centre slice "
                                                "three times: what a 2D export without neighbours gives "
                                                "the network (evaluate_real's .npy slices).")
    synthetic_intensity_fraction: float = setting(1.0, "With the intensity step: share of samples given "
                                                       "its drawn HU, texture and within-organ fields; the "
                                                       "rest keep the phantom's own look (a mix of the two "
                                                       "looks in one run).")

    def validate(self):
        super().validate()
        from tfpanc.methods.cai.networks import input_multiple

        check_positive(self, ("num_units", "rnn_length", "rnn_batch_size"))
        check_not_negative(self, ("epochs_per_unit", "final_epochs", "rnn_epochs", "growth_patience",
                                  "slice_size"))
        multiple = input_multiple(self.model, self.num_units)
        if self.slice_size and self.slice_size % multiple:
            raise InputError("--slice_size", f"must be a multiple of {multiple} for {self.model} "
                             f"with {self.num_units} units, got {self.slice_size}")
        if not self.pnet_final_learning_rate >= 0:
            raise InputError("--pnet_final_learning_rate",
                             f"must be 0 (--learning_rate) or positive, got {self.pnet_final_learning_rate}")
        if not 0 <= self.pnet_final_weight_average < 1:
            raise InputError("--pnet_final_weight_average",
                             f"must be in [0, 1) (0: none), got {self.pnet_final_weight_average}")
        if not self.rnn_learning_rate > 0:
            raise InputError("--rnn_learning_rate", f"must be positive, got {self.rnn_learning_rate}")
        check_unit_interval("positive_fraction", self.positive_fraction, low_open=False, high_open=False)
        if self.unet_batch_norm and self.model != "unet":
            raise InputError("--unet_batch_norm", f"applies only to --model=unet, not {self.model}")
        check_synthetic_settings(self)


@dataclasses.dataclass(frozen=True)
class CaiPredictOptions:
    """``predict``'s cai flags."""

    threshold: float = setting(None, "Probability threshold of the mask; default: the run's (0.5).",
                               kind="float")

    def __post_init__(self):
        if self.threshold is not None:
            check_unit_interval("threshold", self.threshold)


@dataclasses.dataclass(frozen=True)
class CaiExportOptions:
    """``export``'s cai flags (checked by :func:`tfpanc.methods.cai.serving.export_run`)."""

    slice_size: int = setting(None, "Pin the signature's in-plane size to N x N; default: any size.",
                              kind="integer")
    threshold: float = setting(None, "Threshold of the mask output; default: the run's.", kind="float")
