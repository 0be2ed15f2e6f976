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
import tempfile
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


def check_writable(path, flag, folder_output=False):
    """Refuses an output that cannot be written, before any long work starts.

    The file's folder (with ``folder_output``, the output folder itself)
    must be a folder we may write in, or not exist yet below one (it is
    created then): a path under a file, in a read-only or
    missing place like ``/proc``, fails here in one line instead of after
    an hour of inference.

    Example:
    >>> check_writable("/proc/mask.nii.gz", "--output")
    Traceback (most recent call last):
    tfpanc.errors.InputError: error: /proc/mask.nii.gz: --output cannot be written (/proc: ...)
    """
    path = Path(path)
    if folder_output and path.exists() and not path.is_dir():
        raise InputError(path, f"{flag} is a file, not a folder")
    folder = path if folder_output else path.parent
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(path, f"{flag} cannot be written ({folder} is a file, not a folder)")
    # Try it: os.access() says yes to root even on /proc or a read-only mount.
    try:
        fd, probe = tempfile.mkstemp(prefix=".tfpanc-write-check.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise InputError(path, f"{flag} cannot be written ({folder}: {e.strerror})") from None
    if not folder_output and path.is_dir():
        raise InputError(path, f"{flag} is a folder; name the file to write")
