"""The flags every method shares, and the machinery that turns configs into flags.

A method's settings are one frozen dataclass: :class:`SharedConfig` (data,
fold, run directory, batch, epochs, learning rate, precision, seed, ...)
extended by the method's own fields (``tfpanc.methods.cai.config.CaiConfig``
and the like). Each field is declared with :func:`setting`, which carries
its help text, so that

* the absl flags are defined from the dataclass (:func:`define_config_flags`),
  one flag per field, the same name, default and help;
* a run's ``flags.cfg`` records exactly the shared fields and its method's
  (:meth:`SharedConfig.to_flagfile`), nothing of other methods;
* a config is validated when it is made (``__post_init__`` calls
  :meth:`SharedConfig.validate`, which each method extends), whether from
  flags or in a test.

Flag files (``configs/``) are absl flagfiles: ``--flagfile=configs/cai/
pnet_msa_jac.cfg`` followed by any ``--name=value`` overrides, the later one
winning. Which flags a command defines, and which belong to which method, is
the business of :mod:`tfpanc.methods.registry`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from absl import flags

from tfpanc.errors import InputError


# Shared flags that change what a run reports but not what it trains: a run
# resumes (and a finished model is reused) when only these differ.
RUN_ONLY_SETTINGS = ("model_dir", "evaluate", "verbose", "jit_compile", "threshold")


def training_lines(flagfile_text, ignored=RUN_ONLY_SETTINGS):
    r"""The sorted lines of a recorded flags.cfg that affect training (``ignored`` flags left out).

    Example:
    >>> training_lines("--seed=1\n--noevaluate\n--model_dir=a\n")
    ['--seed=1']
    """
    return sorted(line for line in flagfile_text.splitlines()
                  if line.strip() and line.lstrip("-").split("=")[0].removeprefix("no") not in ignored)


def setting(default, help, choices=None, kind=None):  # noqa: A002 (absl's own word)
    """A config field that is also a flag.

    Args:
        default: the default value (tuples become comma lists on the
            command line).
        help: the flag's help text.
        choices: for an enum flag, the allowed values.
        kind: ``"integer"``, ``"float"``, ``"string"``, ``"bool"`` or
            ``"list"``; needed only when ``default`` is None (an optional
            override), else taken from the default's type.
    """
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "kind": kind})


def own_fields(config_class, base=None):
    """Names of the fields ``config_class`` adds to ``base`` (default :class:`SharedConfig`)."""
    base_names = {f.name for f in dataclasses.fields(base or SharedConfig)}
    return tuple(f.name for f in dataclasses.fields(config_class) if f.name not in base_names)


def flag_kind(field):
    """The absl flag type of a :func:`setting` field: enum, bool, integer, float, string or list."""
    if field.metadata.get("choices"):
        return "enum"
    if field.metadata.get("kind"):
        return field.metadata["kind"]
    return {bool: "bool", int: "integer", float: "float", str: "string", tuple: "list"}[type(field.default)]


def define_flag(name, kind, default, help_text, choices, flag_values):
    """Defines one absl flag of a kind :func:`setting` knows."""
    if kind == "enum":
        flags.DEFINE_enum(name, default, list(choices), help_text, flag_values=flag_values)
    elif kind == "list":
        flags.DEFINE_list(name, None if default is None else [str(v) for v in default], help_text,
                          flag_values=flag_values)
    else:
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=flag_values)


def define_field_flag(field, flag_values, help_prefix=""):
    """Defines the absl flag of one config field."""
    define_flag(field.name, flag_kind(field), field.default, help_prefix + field.metadata["help"],
                field.metadata.get("choices"), flag_values)


def define_config_flags(config_class, flag_values, names=None):
    """Defines the flags of ``config_class``'s fields (only ``names`` when given)."""
    for field in dataclasses.fields(config_class):
        if names is None or field.name in names:
            define_field_flag(field, flag_values)


def _numbers(name, raw, convert, what):
    try:
        return tuple(convert(v) for v in raw)
    except ValueError:
        raise InputError(f"--{name}", f"expected {what}, got {','.join(raw)}") from None


def config_from_flags(config_class, flag_values):
    """A validated ``config_class`` from parsed flags (tuple fields from comma lists)."""
    values = {}
    for field in dataclasses.fields(config_class):
        value = getattr(flag_values, field.name)
        if value is None:  # a flag several methods share, not given: this method's default
            value = field.default
        if isinstance(field.default, tuple) and value is not None and not isinstance(value, tuple):
            element = type(field.default[0]) if field.default else str
            value = _numbers(field.name, value, element, f"a comma list of {element.__name__}s")
        values[field.name] = value
    return config_class(**values)


def positive_triple(name, values, kind=int):
    """``values`` as a tuple of 3 positive ``kind``; InputError naming ``--name`` otherwise.

    Example:
    >>> positive_triple("patch", ["64", "64", "16"])
    (64, 64, 16)
    """
    try:
        out = tuple(kind(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or min(out) <= 0:
        raise InputError(f"--{name}", f"expected 3 positive numbers x,y,z, got {','.join(map(str, values))}")
    return out


def check_positive(cfg, names):
    for name in names:
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name}", f"must be at least 1, got {getattr(cfg, name)}")


def check_not_negative(cfg, names):
    for name in names:
        if getattr(cfg, name) < 0:
            raise InputError(f"--{name}", f"must not be negative, got {getattr(cfg, name)}")


def check_unit_interval(name, value, low_open=True, high_open=True):
    low_ok = value > 0.0 if low_open else value >= 0.0
    high_ok = value < 1.0 if high_open else value <= 1.0
    if not (low_ok and high_ok):
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise InputError(f"--{name}", f"must be in {interval}, got {value}")


@dataclasses.dataclass(frozen=True)
class SharedConfig:
    """Settings every method has; field names equal the flag names.

    Methods subclass it, add their own fields with :func:`setting`, set
    ``MODELS`` and ``LOSSES`` (the first of each is the default) and extend
    :meth:`validate`.
    """

    MODELS = ()
    LOSSES = ()
    # Written to flags.cfg only when not at their default, so that runs recorded
    # before these flags existed resume unchanged.
    RECORDED_WHEN_SET = ("distribution", "num_devices", "sync_batchnorm", "phantom_modality")

    method: str = setting("cai", "Paper whose recipe to run (see python -m tfpanc.methods).")
    model: str = setting("", "Network of the method; empty: the method's default (cai: pnet_msa_birnn, "
                             "zhou: fcn8s).")
    model_dir: str = setting("runs/default", "Run directory: checkpoints, logs, resolved flags.")
    data_dir: str = setting("cache/phantom", "Case cache made by python -m tfpanc.data.prepare.")
    phantom_cases: int = setting(0, "If > 0 and --data_dir holds no cache, make this many phantom cases "
                                    "there first.")
    phantom_shape: tuple = setting((128, 128, 48), "Shape of generated phantom cases.")
    phantom_seed: int = setting(0, "Seed of generated phantom cases.")
    phantom_modality: str = setting("ct", "Modality of generated phantom cases: ct, or mri (T1-like, for "
                                          "Cai et al.'s MRI rows).", choices=("ct", "mri"))
    fold: int = setting(0, "Cross-validation fold held out for the final evaluation; -1 trains on all.")
    val_fraction: float = setting(0.1, "Share of the training folds' cases kept for per-epoch validation "
                                       "(seeded by --seed, at least one case when > 0; persisted in "
                                       "<model_dir>/split.json). The held-out fold is read only by the "
                                       "final evaluation.")
    loss: str = setting("", "Training loss; empty: the method's default (cai: jac, zhou: dice).")
    filters: int = setting(64, "Channels per convolution (first level).")
    batch_size: int = setting(8, "Samples per batch.")
    steps_per_epoch: int = setting(100, "Batches per epoch.")
    learning_rate: float = setting(1e-3, "Peak Adam learning rate (each phase: half-epoch warm-up, cosine "
                                         "decay to 1 %).")
    window: tuple = setting((-100.0, 240.0), "CT HU window mapped to [0, 1].")
    mixed_precision: bool = setting(False, "mixed_float16 (GPU) compute policy.")
    jit_compile: bool = setting(False, "XLA-compile the train step.")
    seed: int = setting(0, "Seed of initialisation, sampling and the validation split.")
    evaluate: bool = setting(True, "Evaluate the held-out fold after training.")
    threshold: float = setting(0.5, "Probability threshold of the evaluation.")
    verbose: int = setting(1, "Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch.")
    distribution: str = setting("none", "Data-parallel training: none (one device); mirrored (TensorFlow: "
                                        "tf.distribute.MirroredStrategy, JAX: keras.distribution.DataParallel, "
                                        "over this machine's GPUs or --num_devices CPU devices); multi_worker "
                                        "(the cluster in TF_CONFIG; JAX only, see README). --batch_size is per "
                                        "replica; the learning rate does not scale.",
                                choices=("none", "mirrored", "multi_worker"))
    num_devices: int = setting(None, "Devices per machine of --distribution: unset = every visible GPU (one "
                                     "CPU when there is none); N = the first N GPUs, or N logical CPU devices "
                                     "when no GPU is visible.", kind="integer")
    sync_batchnorm: bool = setting(False, "Synchronise BatchNormalization statistics across replicas "
                                          "(TensorFlow; under JAX's DataParallel they are always the global "
                                          "batch's).")

    def __post_init__(self):
        # Frozen: defaults that depend on the method are filled in here.
        if not self.model and self.MODELS:
            object.__setattr__(self, "model", self.MODELS[0])
        if not self.loss and self.LOSSES:
            object.__setattr__(self, "loss", self.LOSSES[0])
        object.__setattr__(self, "phantom_shape", tuple(int(v) for v in self.phantom_shape))
        object.__setattr__(self, "window", tuple(float(v) for v in self.window))
        self.validate()

    def validate(self):
        """Raises InputError naming the first bad flag; methods extend it."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise InputError(f"--{f.name}", f"{getattr(self, f.name)} is not a {self.method} choice; "
                                 f"choose one of {', '.join(choices)}")
        if self.MODELS and self.model not in self.MODELS:
            raise InputError("--model", f"{self.model} is not a {self.method} model; choose one of "
                             f"{', '.join(self.MODELS)}")
        if self.LOSSES and self.loss not in self.LOSSES:
            raise InputError("--loss", f"{self.loss} is not a {self.method} loss; choose one of "
                             f"{', '.join(self.LOSSES)}")
        check_positive(self, ("filters", "batch_size", "steps_per_epoch"))
        if self.num_devices is not None:
            if self.num_devices < 1:
                raise InputError("--num_devices", f"must be at least 1, got {self.num_devices}")
            if self.distribution == "none":
                raise InputError("--num_devices", "applies to --distribution=mirrored or multi_worker only")
        check_not_negative(self, ("phantom_cases",))
        from tfpanc.data.phantom.case import MIN_EDGE

        if len(self.phantom_shape) != 3 or min(self.phantom_shape) < MIN_EDGE:
            raise InputError("--phantom_shape", f"expected 3 integers >= {MIN_EDGE}, "
                             f"got {','.join(map(str, self.phantom_shape))}")
        if not self.learning_rate > 0:
            raise InputError("--learning_rate", f"must be positive, got {self.learning_rate}")
        check_unit_interval("threshold", self.threshold)
        check_unit_interval("val_fraction", self.val_fraction, low_open=False)
        if self.fold < -1:
            raise InputError("--fold", f"must be -1 (all cases) or a fold index, got {self.fold}")
        if len(self.window) != 2 or self.window[0] >= self.window[1]:
            raise InputError("--window", f"expected low,high with low < high, got {self.window}")
        if not self.model_dir:
            raise InputError("--model_dir", "is required")
        if Path(self.model_dir).exists() and not Path(self.model_dir).is_dir():
            raise InputError(self.model_dir, "--model_dir exists and is not a folder")

    def to_flagfile(self):
        """The resolved settings as flagfile lines (recorded in the run dir)."""
        lines = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.RECORDED_WHEN_SET and value == f.default:
                continue
            if isinstance(value, bool):
                lines.append(f"--{f.name}" if value else f"--no{f.name}")
            elif isinstance(value, tuple):
                lines.append(f"--{f.name}={','.join(str(v) for v in value)}")
            else:
                lines.append(f"--{f.name}={value}")
        return "\n".join(lines) + "\n"
