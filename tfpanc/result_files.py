"""Atomic writers for the files commands leave behind: text, JSON, CSV rows.

Every writer goes through a temporary file in the target folder and
``os.replace``, so a killed command leaves either the old file or the new
one, never half of one. JSON accepts numpy scalars (metric values often are).

Temporary files are named ``.<name>.tfpanc-tmp-<pid>-<random>[suffix]``
(:func:`temporary_path`): a ``kill -9`` leaves one behind, and the next
command writing to that folder removes those whose process is gone
(:func:`sweep_temporaries`). Inside :func:`written_together` a command's
files appear as one unit: all of them when the block ends, none when it
fails.

Example:
>>> import tempfile, pathlib, numpy as np
>>> tmp = tempfile.TemporaryDirectory(); d = pathlib.Path(tmp.name)
>>> write_json(d / "s.json", {"dsc": np.float32(0.5)})
>>> write_csv_rows(d / "r.csv", [{"case": "a", "dsc": 0.5}])
>>> (d / "r.csv").read_text().splitlines()
['case,dsc', 'a,0.5']
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np

TEMPORARY_MARK = ".tfpanc-tmp-"
_TEMPORARY = re.compile(r"^\..+" + re.escape(TEMPORARY_MARK) + r"(\d+)-")
_STAGED = threading.local()


def temporary_path(path, suffix=""):
    """A new, empty temporary file beside ``path`` (same folder, so the rename is atomic).

    ``suffix`` keeps what a writer infers the format from (``.npy``,
    ``.weights.h5``, ``.nii.gz``). Move it into place with :func:`place`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMPORARY_MARK}{os.getpid()}-", suffix=suffix,
                               dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
    return tmp


def place(tmp, path):
    """Renames a finished temporary file to ``path``, or stages it inside :func:`written_together`."""
    staged = getattr(_STAGED, "files", None)
    if staged is None:
        os.replace(tmp, path)
    else:
        staged.append((tmp, Path(path)))


def discard(tmp):
    """Removes a temporary file a failed writer leaves (nothing when it was placed)."""
    staged = getattr(_STAGED, "files", None) or ()
    if os.path.exists(tmp) and all(t != tmp for t, _ in staged):
        os.remove(tmp)


@contextlib.contextmanager
def written_together(folder=None):
    """Every file written in the block appears when it ends; none does if it raises.

    ``folder``, when given, is created for the files (with its parents) and
    removed again on failure if this call made it.

    Why: a command's outputs belong together (a mask and its probabilities,
    per-case rows and their summary): a failure half-way (a full disk, a bad
    case) must not leave half of them, which a reader would take for a
    finished result.

    Example:
    >>> d = Path(tempfile.mkdtemp())
    >>> try:
    ...     with written_together():
    ...         write_text(d / "a.txt", "a")
    ...         raise OSError("disk full")
    ... except OSError:
    ...     pass
    >>> sorted(p.name for p in d.iterdir())
    []
    """
    made = []
    if folder is not None:
        for f in reversed([Path(folder), *Path(folder).parents]):
            if not f.exists():
                f.mkdir()
                made.append(f)
    outer = getattr(_STAGED, "files", None)
    _STAGED.files = staged = []
    try:
        yield
    except BaseException:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.remove(tmp)
        for f in reversed(made):
            with contextlib.suppress(OSError):  # not empty: something else writes there too
                f.rmdir()
        raise
    finally:
        _STAGED.files = outer
    if outer is not None:  # nested: the outer block places them
        outer.extend(staged)
        return
    for tmp, path in staged:
        os.replace(tmp, path)


def process_alive(pid):
    """Whether process ``pid`` of this machine runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_temporaries(folder, recursive=False):
    """Removes the temporary files that killed tfpanc processes left in ``folder``.

    Only tfpanc's own names (:func:`temporary_path`) whose process is no
    longer running on this machine are removed: a temporary of a command
    still writing is kept. Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in (folder.rglob(".*") if recursive else folder.glob(".*")):
        match = _TEMPORARY.match(entry.name)
        if match and entry.is_file() and not process_alive(int(match.group(1))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def write_with(path, write, suffix=""):
    """Writes ``path`` atomically with ``write(temporary_name)`` (numpy, nibabel, Keras weights,
    matplotlib figures); ``suffix`` as for :func:`temporary_path`."""
    tmp = temporary_path(path, suffix)
    try:
        write(tmp)
        place(tmp, path)
    finally:
        discard(tmp)


def save_figure(fig, path, dpi=80):
    """Saves a matplotlib figure as PNG, atomically."""
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), ".png")


def write_text(path, text):
    """Writes ``text`` to ``path`` atomically (a temporary file, then rename)."""
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            f.write(text)

    write_with(path, write)


def json_default(value):
    """``json.dumps(default=...)`` for numpy scalars."""
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path, obj, indent=1, allow_nan=True):
    """Writes ``obj`` as JSON (numpy scalars allowed), atomically."""
    write_text(path, json.dumps(obj, indent=indent, allow_nan=allow_nan, default=json_default) + "\n")


def read_json(path, remedy):
    """A JSON file tfpanc wrote; a truncated or unreadable one is a one-line InputError.

    Args:
        path: the file.
        remedy: what the user can do, ending the message (e.g. "rerun prepare").

    Example:
    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "state.json"; _ = bad.write_text('{"done": {')
    >>> read_json(bad, "retrain the run")
    Traceback (most recent call last):
    tfpanc.errors.InputError: error: ...state.json: is not valid JSON (truncated?); retrain the run
    """
    from tfpanc.errors import InputError

    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(path, f"is missing; {remedy}") from None
    except UnicodeDecodeError:
        raise InputError(path, f"is not a text file; {remedy}") from None
    except ValueError:
        raise InputError(path, f"is not valid JSON (truncated?); {remedy}") from None
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror}); {remedy}") from None


def _number_or_text(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def read_case_rows(path):
    """The rows of a per-case CSV (a ``case`` column): numbers as floats, other values as text.

    Raises:
        InputError: no ``case`` column, or no rows.
    """
    from tfpanc.errors import InputError

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "case" not in reader.fieldnames:
            raise InputError(path, "not a per-case metrics file (no 'case' column)")
        rows = [{k: (v if k == "case" else _number_or_text(v)) for k, v in line.items()} for line in reader]
    if not rows:
        raise InputError(path, "holds no cases")
    return rows


def write_csv_rows(path, rows, columns=None):
    """Writes ``rows`` (dicts) as CSV with a header, atomically.

    Args:
        path: the CSV file.
        rows: a non-empty list of dicts.
        columns: column order; default: the first row's keys.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns or rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def write_eval_tables(out_dir, cases, table):
    """A method's held-out evaluation: ``per_case.csv``, ``tables.csv`` (pooled rows) and
    ``tables.json`` (``{"rows": table, "cases": cases}``, what the tables commands read back)."""
    out_dir = Path(out_dir)
    with written_together(folder=out_dir):
        write_csv_rows(out_dir / "per_case.csv", cases)
        write_csv_rows(out_dir / "tables.csv", table)
        write_json(out_dir / "tables.json", {"rows": table, "cases": cases})
