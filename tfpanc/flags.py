"""The one flags module of tfpanc's training and prediction commands.

Flag files (``configs/``) are absl flagfiles: ``--flagfile=configs/cai/
pnet_msa_jac.cfg`` followed by any ``--name=value`` overrides, the later one
winning. :func:`train_config` validates the parsed values at start-up and
turns them into a frozen :class:`TrainConfig`, so that method code never reads
the absl globals (and tests can build configs directly).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from absl import flags

from tfpanc.errors import InputError

FLAGS = flags.FLAGS

METHODS = ("cai", "zhou")
CAI_MODELS = ("pnet_msa", "pnet_msa_birnn", "unet", "hnn")
ZHOU_MODELS = ("fcn8s",)
MODELS = {"cai": CAI_MODELS, "zhou": ZHOU_MODELS}
LOSSES = ("jac", "ce", "cbce", "dice")
ZHOU_VIEWS = ("axial", "coronal", "sagittal")
ZHOU_STAGES = ("coarse", "fine")
FCN_MULTIPLE = 32  # FCN-8s' total down-sampling
# Settings only one method reads: left out of the other method's recorded
# flags.cfg, so adding a method never changes an existing run's flags.
CAI_ONLY = ("num_units", "epochs_per_unit", "final_epochs", "growth_patience", "growth_min_delta",
            "rnn_length", "rnn_epochs", "rnn_batch_size", "rnn_learning_rate", "positive_fraction")
ZHOU_ONLY = ("view", "stage", "fc_filters", "dropout", "batch_norm", "pretrained", "coarse_epochs",
             "fine_epochs", "fine_learning_rate", "min_pixels", "fine_margin_min", "fine_margin_max",
             "fine_size", "max_rounds", "stop_threshold", "crop_margin")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Validated training settings; field names equal the flag names."""

    method: str = "cai"
    model: str = "pnet_msa_birnn"
    model_dir: str = "runs/default"
    data_dir: str = "cache/phantom"
    phantom_cases: int = 0
    phantom_shape: tuple = (128, 128, 48)
    phantom_seed: int = 0
    fold: int = 0
    loss: str = "jac"
    num_units: int = 5
    filters: int = 64
    slice_size: int = 0
    batch_size: int = 8
    steps_per_epoch: int = 100
    epochs_per_unit: int = 10
    final_epochs: int = 10
    growth_patience: int = 2
    growth_min_delta: float = 0.005
    rnn_length: int = 8
    rnn_epochs: int = 5
    rnn_batch_size: int = 2
    learning_rate: float = 1e-3
    rnn_learning_rate: float = 1e-4
    positive_fraction: float = 0.5
    window: tuple = (-100.0, 240.0)
    mixed_precision: bool = False
    jit_compile: bool = False
    seed: int = 0
    evaluate: bool = True
    threshold: float = 0.5
    verbose: int = 1
    # zhou (fixed-point FCN-8s, three views); see configs/zhou/.
    view: str = "all"
    stage: str = "all"
    fc_filters: int = 4096
    dropout: float = 0.5
    batch_norm: bool = False
    pretrained: str = ""
    coarse_epochs: int = 10
    fine_epochs: int = 10
    fine_learning_rate: float = 1e-4
    min_pixels: int = 100
    fine_margin_min: int = 0
    fine_margin_max: int = 60
    fine_size: int = 0
    max_rounds: int = 10
    stop_threshold: float = 0.95
    crop_margin: int = 30

    def to_flagfile(self):
        """The resolved settings as flagfile lines (recorded in the run dir)."""
        lines = []
        skip = ZHOU_ONLY if self.method == "cai" else CAI_ONLY
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool):
                lines.append(f"--{f.name}" if value else f"--no{f.name}")
            elif isinstance(value, tuple):
                lines.append(f"--{f.name}={','.join(str(v) for v in value)}")
            else:
                lines.append(f"--{f.name}={value}")
        return "\n".join(lines) + "\n"


_DEFAULTS = TrainConfig()


def define_train_flags():
    """Defines the training flags (call once, before app.run)."""
    d = _DEFAULTS
    flags.DEFINE_enum("method", d.method, list(METHODS), "Paper whose recipe to run.")
    flags.DEFINE_enum("model", d.model, list(CAI_MODELS + ZHOU_MODELS),
                      "cai: which network (Table II rows, Table III); zhou: fcn8s (the default for "
                      "--method=zhou when --model is not given).")
    flags.DEFINE_string("model_dir", d.model_dir, "Run directory: checkpoints, logs, resolved flags.")
    flags.DEFINE_string("data_dir", d.data_dir, "Case cache made by python -m tfpanc.data.prepare.")
    flags.DEFINE_integer("phantom_cases", d.phantom_cases,
                         "If > 0 and --data_dir holds no cache, make this many phantom cases there first.")
    flags.DEFINE_list("phantom_shape", [str(v) for v in d.phantom_shape], "Shape of generated phantom cases.")
    flags.DEFINE_integer("phantom_seed", d.phantom_seed, "Seed of generated phantom cases.")
    flags.DEFINE_integer("fold", d.fold, "Cross-validation fold held out for validation; -1 trains on all.")
    flags.DEFINE_enum("loss", d.loss, list(LOSSES), "Training loss (cai Table I: jac, ce, cbce).")
    flags.DEFINE_integer("num_units", d.num_units, "PNet-MSA units K (grown from 1).")
    flags.DEFINE_integer("filters", d.filters, "Channels per convolution.")
    flags.DEFINE_integer("slice_size", d.slice_size,
                         "In-plane size slices are padded/cropped to; 0 keeps the cache's size.")
    flags.DEFINE_integer("batch_size", d.batch_size, "Slices per batch.")
    flags.DEFINE_integer("steps_per_epoch", d.steps_per_epoch, "Batches per epoch.")
    flags.DEFINE_integer("epochs_per_unit", d.epochs_per_unit, "Most epochs spent at each K before growing.")
    flags.DEFINE_integer("final_epochs", d.final_epochs, "Epochs of the whole network after growth.")
    flags.DEFINE_integer("growth_patience", d.growth_patience,
                         "Epochs without min-delta improvement of L_K before unit K+1 is added.")
    flags.DEFINE_float("growth_min_delta", d.growth_min_delta, "Smallest loss drop that counts.")
    flags.DEFINE_integer("rnn_length", d.rnn_length, "Consecutive slices per BiRNN training sequence.")
    flags.DEFINE_integer("rnn_epochs", d.rnn_epochs, "End-to-end CNN+BiRNN fine-tuning epochs.")
    flags.DEFINE_integer("rnn_batch_size", d.rnn_batch_size, "Sequences per batch.")
    flags.DEFINE_float("learning_rate", d.learning_rate,
                       "Peak Adam learning rate of the CNN stage (each phase: half-epoch warm-up, "
                       "cosine decay to 1 %).")
    flags.DEFINE_float("rnn_learning_rate", d.rnn_learning_rate,
                       "Peak Adam learning rate of the BiRNN stage (same schedule).")
    flags.DEFINE_float("positive_fraction", d.positive_fraction,
                       "Probability that a sampled slice holds pancreas (oversampling).")
    flags.DEFINE_list("window", [str(v) for v in d.window], "CT HU window mapped to [0, 1].")
    flags.DEFINE_bool("mixed_precision", d.mixed_precision, "mixed_float16 (GPU) compute policy.")
    flags.DEFINE_bool("jit_compile", d.jit_compile, "XLA-compile the train step.")
    flags.DEFINE_integer("seed", d.seed, "Seed of initialisation and sampling.")
    flags.DEFINE_bool("evaluate", d.evaluate, "Evaluate the validation fold after training.")
    flags.DEFINE_float("threshold", d.threshold, "Probability threshold of the evaluation.")
    flags.DEFINE_integer("verbose", d.verbose, "Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch.")
    # zhou
    flags.DEFINE_enum("view", d.view, list(ZHOU_VIEWS) + ["all"],
                      "zhou: which view's model(s) to train; all: the three views.")
    flags.DEFINE_enum("stage", d.stage, list(ZHOU_STAGES) + ["all"],
                      "zhou: coarse (whole slices), fine (pancreas box crops) or all.")
    flags.DEFINE_integer("fc_filters", d.fc_filters, "zhou: channels of FCN-8s fc6/fc7 (VGG16: 4096).")
    flags.DEFINE_float("dropout", d.dropout, "zhou: dropout after fc6 and fc7.")
    flags.DEFINE_bool("batch_norm", d.batch_norm,
                      "zhou: BN after every FCN-8s trunk conv (VGG16-BN style) for training from scratch.")
    flags.DEFINE_string("pretrained", d.pretrained,
                        "zhou: optional local Keras VGG16 weights file to start the FCN-8s trunk from.")
    flags.DEFINE_integer("coarse_epochs", d.coarse_epochs, "zhou: epochs of each coarse model.")
    flags.DEFINE_integer("fine_epochs", d.fine_epochs, "zhou: epochs of each fine model.")
    flags.DEFINE_float("fine_learning_rate", d.fine_learning_rate,
                       "zhou: Adam learning rate of the fine models (--learning_rate: coarse).")
    flags.DEFINE_integer("min_pixels", d.min_pixels,
                         "zhou: coarse models train on slices with at least this many pancreas pixels.")
    flags.DEFINE_integer("fine_margin_min", d.fine_margin_min, "zhou: smallest random crop margin (px).")
    flags.DEFINE_integer("fine_margin_max", d.fine_margin_max, "zhou: largest random crop margin (px).")
    flags.DEFINE_integer("fine_size", d.fine_size,
                         "zhou: square size fine training crops are centre-padded to; 0: per view, the "
                         "largest box plus margins, rounded up to a multiple of 32.")
    flags.DEFINE_integer("max_rounds", d.max_rounds, "zhou: fixed-point rounds T at test time.")
    flags.DEFINE_float("stop_threshold", d.stop_threshold, "zhou: stop when d(t) = DSC(Z(t-1), Z(t)) > R.")
    flags.DEFINE_integer("crop_margin", d.crop_margin, "zhou: test-time frame around each box (px).")


def _ints(name, raw, n):
    try:
        values = tuple(int(v) for v in raw)
    except ValueError:
        raise InputError(f"--{name}", f"expected {n} integers, got {','.join(raw)}") from None
    if len(values) != n or min(values) < 1:
        raise InputError(f"--{name}", f"expected {n} positive integers, got {','.join(raw)}")
    return values


def _zhou_checks(fv):
    for name in ("fc_filters",):
        if getattr(fv, name) < 1:
            raise InputError(f"--{name}", f"must be at least 1, got {getattr(fv, name)}")
    for name in ("coarse_epochs", "fine_epochs", "min_pixels", "fine_margin_min", "fine_size",
                 "max_rounds", "crop_margin"):
        if getattr(fv, name) < 0:
            raise InputError(f"--{name}", f"must not be negative, got {getattr(fv, name)}")
    for name in ("slice_size", "fine_size"):
        if getattr(fv, name) % FCN_MULTIPLE:
            raise InputError(f"--{name}", f"must be a multiple of {FCN_MULTIPLE} for FCN-8s, "
                             f"got {getattr(fv, name)}")
    if fv.fine_margin_max < fv.fine_margin_min:
        raise InputError("--fine_margin_max", f"must be at least --fine_margin_min={fv.fine_margin_min}, "
                         f"got {fv.fine_margin_max}")
    if not fv.fine_learning_rate > 0:
        raise InputError("--fine_learning_rate", f"must be positive, got {fv.fine_learning_rate}")
    if not 0.0 <= fv.dropout < 1.0:
        raise InputError("--dropout", f"must be in [0, 1), got {fv.dropout}")
    if not 0.0 < fv.stop_threshold <= 1.0:
        raise InputError("--stop_threshold", f"must be in (0, 1], got {fv.stop_threshold}")
    if fv.pretrained and not Path(fv.pretrained).is_file():
        raise InputError(fv.pretrained, "--pretrained weights file not found")


def train_config(flag_values=FLAGS):
    """Validates the parsed flags; returns a :class:`TrainConfig`.

    Raises:
        InputError: naming the first bad flag.
    """
    fv = flag_values
    positive = ["num_units", "filters", "batch_size", "steps_per_epoch", "rnn_length", "rnn_batch_size"]
    for name in positive:
        if getattr(fv, name) < 1:
            raise InputError(f"--{name}", f"must be at least 1, got {getattr(fv, name)}")
    for name in ["epochs_per_unit", "final_epochs", "rnn_epochs", "growth_patience", "phantom_cases",
                 "slice_size"]:
        if getattr(fv, name) < 0:
            raise InputError(f"--{name}", f"must not be negative, got {getattr(fv, name)}")
    model = fv.model
    if fv.method == "zhou" and not fv["model"].present:
        model = ZHOU_MODELS[0]
    if model not in MODELS[fv.method]:
        raise InputError("--model", f"{model} is not a {fv.method} model; choose one of "
                         f"{', '.join(MODELS[fv.method])}")
    if fv.method == "zhou":
        _zhou_checks(fv)
    elif fv.slice_size and fv.slice_size % 2 ** (fv.num_units - 1):
        raise InputError("--slice_size", f"must be a multiple of {2 ** (fv.num_units - 1)} "
                         f"for {fv.num_units} units, got {fv.slice_size}")
    for name in ["learning_rate", "rnn_learning_rate"]:
        if not getattr(fv, name) > 0:
            raise InputError(f"--{name}", f"must be positive, got {getattr(fv, name)}")
    if not 0.0 <= fv.positive_fraction <= 1.0:
        raise InputError("--positive_fraction", f"must be in [0, 1], got {fv.positive_fraction}")
    if not 0.0 < fv.threshold < 1.0:
        raise InputError("--threshold", f"must be in (0, 1), got {fv.threshold}")
    if fv.fold < -1:
        raise InputError("--fold", f"must be -1 (all cases) or a fold index, got {fv.fold}")
    try:
        window = tuple(float(v) for v in fv.window)
    except ValueError:
        raise InputError("--window", f"expected two numbers, got {','.join(fv.window)}") from None
    if len(window) != 2 or window[0] >= window[1]:
        raise InputError("--window", f"expected low,high with low < high, got {','.join(fv.window)}")
    if not fv.model_dir:
        raise InputError("--model_dir", "is required")
    if Path(fv.model_dir).exists() and not Path(fv.model_dir).is_dir():
        raise InputError(fv.model_dir, "--model_dir exists and is not a folder")
    values = {f.name: getattr(fv, f.name) for f in dataclasses.fields(TrainConfig)}
    values["window"] = window
    values["model"] = model
    values["phantom_shape"] = _ints("phantom_shape", fv.phantom_shape, 3)
    return TrainConfig(**values)
