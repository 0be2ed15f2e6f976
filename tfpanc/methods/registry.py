"""The method registry: a method name maps to its config, recipe, predictor and evaluation.

In the spirit of TF Model Garden's ``task_factory`` / ``exp_factory``: the
commands (``train``, ``predict``, ``export``, ...) look a method up here and
call its parts; none of them branches on a method's name. Adding a method is
adding its package (``tfpanc/methods/<name>/``) and registering a
:class:`Method` from its ``__init__``::

    registry.register(registry.Method(
        name="toy", config=ToyConfig,
        train="my_pkg.toy:train", predictor="my_pkg.toy:load_predictor"))

The callables are named ``"module:attribute"`` and imported when first
used: the commands validate their flags and inputs, and fail in a second on
a bad one, before Keras and the method's models are imported.

Contracts (``info`` is the run's ``run.json``, ``data`` a
:class:`tfpanc.training.data_split.TrainingData`):

* ``train(cfg, run, log, data) -> info`` trains into ``run`` (a
  :class:`tfpanc.training.run_dir.RunDir`) and returns what ``run.json``
  records (``None`` when nothing complete was made); the train command
  writes ``run.json`` with ``method`` and the case split added.
* ``predictor(run_dir, info, options) -> predict`` loads a trained run;
  ``predict(image, probability=False, spacing=None)`` maps a raw
  ``[x, y, z]`` volume (``spacing`` in mm, for messages) to
  ``{"mask": bool array[, "probability": float32 array][, "summary": str]}``
  on the same grid.
* ``evaluate(run_dir, cache, case_ids, log)`` scores the held-out cases and
  writes the method's tables under ``<run>/eval`` (optional).
* ``export(model_dir, export_dir, log=print, **options)`` writes a
  SavedModel (optional); ``options`` are the fields of ``export_options``.
* ``compare``: ``"module"`` with ``experiment_key(info) -> dict`` (the
  settings that make runs folds of one experiment) and ``fill(table,
  experiments) -> {row: Ours}`` (our side of the paper's tables; see
  :mod:`tfpanc.compare`), optional.
* ``crop_multiple(info) -> (mx, my, mz) or None``: what ``predict``'s body
  crop floors the crop's start to on each axis of the training grid (the
  network's total down-sampling there); None where a crop would change the
  answer whatever its alignment (a fixed input frame, two_stage): ``predict``
  then predicts the whole field of view. Optional (default 1: no alignment).
* ``predict_options``: a frozen dataclass of predict-time overrides (fields
  made with :func:`tfpanc.flags.setting`, default None = the run's value),
  built from ``predict``'s flags; ``export_options`` likewise for ``export``.
"""

from __future__ import annotations

import dataclasses
import importlib

from tfpanc import flags as config_flags
from tfpanc.errors import InputError
from tfpanc.flags import SharedConfig

_METHODS = {}


@dataclasses.dataclass(frozen=True)
class Method:
    """One registered method; see the module docstring for the contracts.

    Args:
        name: the ``--method`` value and the ``method`` of its runs.
        config: its :class:`tfpanc.flags.SharedConfig` subclass.
        train: ``"module:function"`` of the training recipe.
        predictor: ``"module:function"`` that loads a trained run.
        evaluate: ``"module:function"`` of the held-out evaluation, or "".
        export: ``"module:function"`` of the SavedModel export, or "".
        compare: the module that fills the paper's tables for ``tfpanc.compare``, or "".
        crops_body: the predictor crops CT to the body itself (``predict --body_crop``
            then leaves it alone).
        crop_multiple: ``"module:function"`` giving, from ``info``, the per-axis
            multiple ``predict``'s body crop aligns its start to, or "".
        resamples: the predictor resamples to its own spacing (``predict --resample``
            then leaves it alone).
        predict_options: dataclass of ``predict``'s method flags, or None.
        export_options: dataclass of ``export``'s method flags, or None.
        description: one line for listings.
    """

    name: str
    config: type
    train: str
    predictor: str
    evaluate: str = ""
    export: str = ""
    compare: str = ""
    crops_body: bool = False
    crop_multiple: str = ""
    resamples: bool = False
    predict_options: type = None
    export_options: type = None
    description: str = ""

    def call(self, part, *args, **kwargs):
        """Imports and calls one of the ``"module:function"`` parts."""
        target = getattr(self, part)
        if not target:
            raise InputError("--model_dir", f"method {self.name} has no {part} step")
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    def has(self, part):
        return bool(getattr(self, part))


def _own_settings(method, kind):
    cls = {"train": method.config, "predict": method.predict_options, "export": method.export_options}[kind]
    if cls is None:
        return {}
    base = SharedConfig if kind == "train" else None
    names = config_flags.own_fields(cls, base) if base else tuple(f.name for f in dataclasses.fields(cls))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return {n: fields[n] for n in names}


def _same_kind(a, b):
    return config_flags.flag_kind(a) == config_flags.flag_kind(b)


def register(method):
    """Adds a method; its flags may share a name with another method's flag of the same type.

    Two methods may both have ``--fine_epochs``, with their own defaults,
    choices and help: the flag is defined once (see :func:`define_method_flags`)
    and each method's config applies its own default.

    Raises:
        ValueError: the name is taken, or a flag clashes (a programming error).
    """
    if method.name in _METHODS:
        raise ValueError(f"method {method.name!r} is registered already")
    if not issubclass(method.config, SharedConfig):
        raise ValueError(f"{method.name}: config must subclass tfpanc.flags.SharedConfig")
    shared = {f.name for f in dataclasses.fields(SharedConfig)}
    for kind in ("train", "predict", "export"):
        mine = _own_settings(method, kind)
        if kind == "train" and set(mine) & shared:
            raise ValueError(f"{method.name}: {sorted(set(mine) & shared)} are shared flags")
        for other in _METHODS.values():
            theirs = _own_settings(other, kind)
            for name in set(mine) & set(theirs):
                if not _same_kind(mine[name], theirs[name]):
                    raise ValueError(f"{method.name}: flag --{name} has another type than {other.name}'s")
    _METHODS[method.name] = method
    return method


def unregister(name):
    """Removes a method (tests that register a toy method clean up with it)."""
    _METHODS.pop(name, None)


def names():
    return tuple(_METHODS)


def get(name):
    """The registered method ``name``, else a one-line InputError."""
    if name not in _METHODS:
        raise InputError("--method", f"unknown method {name!r}; choose one of {', '.join(_METHODS)}")
    return _METHODS[name]


def owners(kind):
    """``{flag name: (methods that define it)}`` for one command kind."""
    out = {}
    for method in _METHODS.values():
        for name in _own_settings(method, kind):
            out.setdefault(name, []).append(method.name)
    return {k: tuple(v) for k, v in out.items()}


def define_method_flags(kind, flag_values):
    """Defines every registered method's own flags of one command kind, each name once.

    A name several methods define becomes one flag whose help lists each
    method's text; where their defaults differ its default is None, which
    each method's config replaces by its own default (:func:`tfpanc.flags.config_from_flags`),
    and an enum accepts every method's choices (each config checks its own).
    """
    fields = {}
    for method in _METHODS.values():
        for name, field in _own_settings(method, kind).items():
            fields.setdefault(name, []).append((method.name, field))
    for name, entries in fields.items():
        first = entries[0][1]
        if len(entries) == 1:
            config_flags.define_field_flag(first, flag_values, help_prefix=f"{entries[0][0]}: ")
            continue
        same_default = all(f.default == first.default for _, f in entries)
        choices = []
        for _, f in entries:
            choices += [c for c in (f.metadata.get("choices") or ()) if c not in choices]
        help_text = "; ".join(f"{m}: {f.metadata['help']}" for m, f in entries)
        config_flags.define_flag(name, config_flags.flag_kind(first), first.default if same_default else None,
                                 help_text, choices or None, flag_values)


def define_train_flags(flag_values):
    """Defines the train command's flags: the shared ones, then every method's."""
    config_flags.define_config_flags(SharedConfig, flag_values)
    define_method_flags("train", flag_values)


def refuse_foreign_flags(method, kind, flag_values):
    """One-line error for a flag given on the command line or in a flagfile that only
    other methods read (e.g. a zhou flagfile line in a cai run)."""
    mine = set(_own_settings(method, kind))
    for name, methods in owners(kind).items():
        if name not in mine and flag_values[name].present:
            raise InputError(f"--{name}", f"is a {', '.join(methods)} flag; it does not apply to "
                             f"method {method.name}")


def train_config(flag_values):
    """The validated config of the method ``--method`` names, from the train flags."""
    method = get(flag_values.method)
    refuse_foreign_flags(method, "train", flag_values)
    return method, config_flags.config_from_flags(method.config, flag_values)


def options_from_flags(method, kind, flag_values):
    """The ``predict_options`` / ``export_options`` of ``method`` from parsed flags (None if it has none)."""
    refuse_foreign_flags(method, kind, flag_values)
    cls = getattr(method, f"{kind}_options")
    if cls is None:
        return None
    return config_flags.config_from_flags(cls, flag_values)


def method_of_run(run_dir):
    """``(method, info)`` of a trained run directory, from the ``method`` its run.json records."""
    from tfpanc.training.run_dir import RunDir

    run = RunDir(run_dir)
    info = run.run_info()
    if "method" not in info:
        raise InputError(run.path / "run.json", "records no method; retrain the run with this tfpanc")
    try:
        return get(info["method"]), info
    except InputError:
        raise InputError(run.path / "run.json", f"method {info['method']!r} is not registered; "
                         f"this tfpanc has {', '.join(_METHODS)}") from None
