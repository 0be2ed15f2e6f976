"""Rules that keep a command's outputs away from its inputs and from files it did not make.

Every command that writes checks its output paths before any work starts
(so a long run cannot end by overwriting its own input), and deletes a
folder only when that folder is one tfpanc made (see
:func:`holds_only`). Paths are compared after resolving symbolic links
and ``..``, and existing files are also compared by inode, so a hard link or
a second name of the same file counts as the same file.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfpanc.errors import InputError


def _resolved(path):
    return Path(os.path.abspath(os.path.realpath(os.fspath(path))))


def same_file(a, b):
    """True when ``a`` and ``b`` name the same file or folder (also via links).

    Example:
    >>> same_file("/tmp/x/../y", "/tmp/y")
    True
    """
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def is_inside(path, folder):
    """True when ``path`` is ``folder`` or lies somewhere below it.

    Example:
    >>> is_inside("/data/ct/a.nii.gz", "/data"), is_inside("/data2", "/data")
    (True, False)
    """
    path, folder = _resolved(path), _resolved(folder)
    return path == folder or folder in path.parents


def overlap(a, b):
    """True when one of the two paths is, or contains, the other."""
    return is_inside(a, b) or is_inside(b, a)


def refuse_overlap(output, output_flag, inputs, input_flag):
    """Raises InputError when ``output`` is, contains or lies inside one of ``inputs``.

    Args:
        output: a path the command will write (file or folder).
        output_flag: the flag that named it, e.g. ``"--output"``.
        inputs: paths the command reads.
        input_flag: the flag that named them.
    """
    for source in inputs:
        if same_file(output, source) or overlap(output, source):
            raise InputError(output, f"{output_flag} overlaps {input_flag} {source}; "
                             "write the output somewhere else (the input would be overwritten)")


def refuse_same_outputs(paths_by_flag):
    """Raises InputError when two outputs of one command are the same file.

    Args:
        paths_by_flag: ``[(flag, path)]``; ``path`` may be None (not asked for).
    """
    seen = []
    for flag, path in paths_by_flag:
        if path is None:
            continue
        for other_flag, other in seen:
            if same_file(path, other):
                raise InputError(path, f"{flag} and {other_flag} name the same file; "
                                 "one would replace the other")
        seen.append((flag, path))


def holds_only(folder, names):
    """True when every entry directly in ``folder`` has one of ``names``.

    Commands delete a folder only when this holds for the names they write,
    so a user's own files are never removed with it.
    """
    return all(entry.name in names for entry in Path(folder).iterdir())
