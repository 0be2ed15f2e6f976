"""User-facing errors and the CLI wrapper that turns them into one line.

A user mistake (a missing file, a label that does not match its image, a bad
flag value) must end with one clear line on stderr and a non-zero exit, never
a Python traceback. Code raises :class:`InputError` naming the file and the
problem; :mod:`tfpanc.cli` catches it at the top of every command.
"""

from __future__ import annotations

import os


class InputError(Exception):
    """Bad user input: a file that cannot be used, or a wrong flag value.

    Args:
        path: the file or flag the problem is about (``None`` when there is
            none to name).
        problem: one sentence, lower-case start, no trailing period.
    """

    def __init__(self, path, problem):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(self.one_line())

    def one_line(self):
        if self.path is None:
            return f"error: {self.problem}"
        return f"error: {self.path}: {self.problem}"
