"""Atomic writers for the files commands leave behind: text, JSON, CSV rows.

Every writer goes through a temporary file in the target folder and
``os.replace``, so a killed command leaves either the old file or the new
one, never half of one. JSON accepts numpy scalars (metric values often are).

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

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def write_text(path, text):
    """Writes ``text`` to ``path`` atomically (a temporary file, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv_rows(out_dir / "per_case.csv", cases)
    write_csv_rows(out_dir / "tables.csv", table)
    write_json(out_dir / "tables.json", {"rows": table, "cases": cases})
