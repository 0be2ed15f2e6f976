r"""Writes TF Serving's ``models.config`` for every exported model and version under a folder.

Usage::

    python -m tfpanc.export.models_config serving [--stable=tfpanc_cai:2 ...] \
        [--output=serving/models.config] [--serving_path=/models]

``BASE`` holds models the way ``python -m tfpanc.export`` writes them,
``BASE/NAME/N/saved_model.pb``. The file lists one ``config`` per model
folder in TF Serving's ``model_config_list`` text format, with every
numbered version in a ``specific`` version policy (TF Serving's default
policy loads only the latest) and a ``version_labels`` entry ``stable``: the
highest version, or the one ``--stable=NAME:VERSION`` names. Clients then
ask for ``--version=stable`` (REST ``/v1/models/NAME/labels/stable``).
``base_path`` is each model folder as the server sees it: BASE's absolute
path, or ``--serving_path`` in its place (the folder BASE is mounted at in
the ``tensorflow/serving`` container).

The file goes to ``BASE/models.config`` unless ``--output`` says otherwise,
written to a temporary file and renamed, so a server polling it
(``--model_config_file_poll_wait_seconds``) never reads half of it. A
numbered folder without ``saved_model.pb`` (an unfinished copy) is left out
and reported. BASE with no models, a bad ``--stable``, or an ``--output``
that is a folder or a file other than a model config end with one line and
write nothing.

A label given at startup names a version that is not loaded yet, which TF
Serving refuses unless it runs with
``--allow_version_labels_for_unavailable_models``.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from tfpanc import cli
from tfpanc.errors import InputError
from tfpanc.export import savedmodel
from tfpanc.result_files import write_text

FILE_NAME = "models.config"
LABEL = "stable"


def find_models(base):
    """``({name: [versions]}, [skipped version folders])`` of the SavedModels under ``base``.

    A model is a folder holding at least one numbered version folder with a
    ``saved_model.pb``; other folders and files (``models.config`` itself,
    ``N.partial`` exports in progress) are not models or versions.

    Example:
    >>> import tempfile
    >>> base = Path(tempfile.mkdtemp())
    >>> for v in ("1", "3", "3.partial"):
    ...     (base / "tfpanc_cai" / v).mkdir(parents=True)
    >>> (base / "tfpanc_cai" / "1" / "saved_model.pb").touch()
    >>> (base / "tfpanc_cai" / "3" / "saved_model.pb").touch()
    >>> find_models(base)[0]
    {'tfpanc_cai': [1, 3]}
    """
    base = Path(base)
    if not base.is_dir():
        raise InputError(base, "no such folder")
    models, skipped = {}, []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        versions = []
        for number in savedmodel.versions(folder):
            if (folder / str(number) / "saved_model.pb").is_file():
                versions.append(number)
            else:
                skipped.append(folder / str(number))
        if versions:
            models[folder.name] = versions
    return models, skipped


def _quote(text):
    """A text-format string literal (UTF-8 kept; quotes, backslashes and control characters escaped)."""
    out = []
    for ch in str(text):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def config_text(models, base_path, stable=None, header=""):
    """The ``model_config_list`` text of ``models`` (``{name: [versions]}``).

    Args:
        models: model names and their versions.
        base_path: the folder the server finds ``NAME/`` in.
        stable: ``{name: version}`` of the ``stable`` labels; others get their highest version.
        header: comment lines put first (each without ``#``).

    Example:
    >>> print(config_text({"tfpanc_cai": [1, 2]}, "/models", {"tfpanc_cai": 1}))
    model_config_list {
      config {
        name: "tfpanc_cai"
        base_path: "/models/tfpanc_cai"
        model_platform: "tensorflow"
        model_version_policy {
          specific {
            versions: 1
            versions: 2
          }
        }
        version_labels {
          key: "stable"
          value: 1
        }
      }
    }
    <BLANKLINE>
    """
    stable = stable or {}
    lines = [f"# {line}" for line in header.splitlines()] + ["model_config_list {"]
    for name, versions in models.items():
        lines += ["  config {", f"    name: {_quote(name)}",
                  f"    base_path: {_quote(str(base_path).rstrip('/') + '/' + name)}",
                  '    model_platform: "tensorflow"', "    model_version_policy {", "      specific {"]
        lines += [f"        versions: {v}" for v in versions]
        lines += ["      }", "    }", "    version_labels {", f"      key: {_quote(LABEL)}",
                  f"      value: {stable.get(name, max(versions))}", "    }", "  }"]
    return "\n".join(lines + ["}", ""])


def parse_stable(values, models):
    """``{name: version}`` from ``--stable=NAME:VERSION`` values, checked against ``models``."""
    stable = {}
    for value in values or ():
        name, sep, version = str(value).rpartition(":")
        if not sep or not name or not version.isdigit():
            raise InputError("--stable", f"expected NAME:VERSION (e.g. tfpanc_cai:2), got {value!r}")
        if name not in models:
            raise InputError("--stable", f"no model {name!r} under the base folder (models: {', '.join(models)})")
        if int(version) not in models[name]:
            raise InputError("--stable", f"{name} has versions {models[name]}, not {int(version)}")
        if name in stable and stable[name] != int(version):
            raise InputError("--stable", f"{name} is labelled twice ({stable[name]} and {int(version)})")
        stable[name] = int(version)
    return stable


def _check_output(output):
    if output.is_dir():
        raise InputError(output, "is a folder; name the config file to write")
    if output.exists():
        try:
            text = output.read_text(errors="replace")
        except OSError as e:
            raise InputError(output, f"cannot be read ({e.strerror})") from None
        # Regenerating a config replaces it; any other file is the user's.
        if "model_config_list" not in text:
            raise InputError(output, "exists and is not a TF Serving model config; move it away first")


def write_config(base, output=None, stable=(), serving_path=None, log=print):
    """Writes the ``models.config`` of every model under ``base``; returns its path.

    Args:
        base: the folder of ``NAME/N/`` exports.
        output: the file to write; None for ``base/models.config``.
        stable: ``NAME:VERSION`` strings for the ``stable`` labels.
        serving_path: ``base`` as the server sees it; None for its absolute path.
        log: progress printer.

    Example:
    >>> write_config("serving", serving_path="/models")  # doctest: +SKIP
    tfpanc_cai: versions 1, 2 (stable 2) at /models/tfpanc_cai
    wrote serving/models.config (1 model)
    PosixPath('serving/models.config')
    """
    base = Path(base)
    models, skipped = find_models(base)
    if not models:
        raise InputError(base, "holds no exported models (NAME/N/saved_model.pb); export one with "
                         "python -m tfpanc.export first")
    labels = parse_stable(stable, models)
    output = base / FILE_NAME if output is None else Path(output)
    _check_output(output)
    base_path = serving_path or str(base.resolve())
    text = config_text(models, base_path, labels,
                       header=f"TF Serving model config of {base.resolve()}, written by "
                              "python -m tfpanc.export.models_config.\nServe with --model_config_file and "
                              "--allow_version_labels_for_unavailable_models (labels at startup).")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text(output, text)  # atomic: a server polling the file never reads half of it
    for path in skipped:
        log(f"skipped {path}: not a version with a saved_model.pb")
    for name, versions in models.items():
        log(f"{name}: versions {', '.join(map(str, versions))} ({LABEL} {labels.get(name, max(versions))}) "
            f"at {base_path.rstrip('/')}/{name}")
    log(f"wrote {output} ({len(models)} model{'s' if len(models) > 1 else ''})")
    return output


def define_flags(fv):
    flags.DEFINE_multi_string("stable", [], "NAME:VERSION of a model's 'stable' label (default: its highest "
                              "version); repeat for several models.", flag_values=fv)
    flags.DEFINE_string("output", None, "The config file to write (default: BASE/models.config).", flag_values=fv)
    flags.DEFINE_string("serving_path", None, "BASE as the server sees it, e.g. /models in the tensorflow/serving "
                        "container (default: BASE's absolute path).", flag_values=fv)


def main(argv, fv):
    if len(argv) != 2:
        raise InputError(None, "give one BASE folder: python -m tfpanc.export.models_config BASE "
                         "[--stable=NAME:VERSION] [--output=FILE]")
    write_config(argv[1], fv.output, fv.stable, fv.serving_path)


if __name__ == "__main__":
    cli.run_command(define_flags, main)
