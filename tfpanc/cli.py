"""How every tfpanc command starts: flags, one-line errors, exit codes.

A command module defines ``define_flags(flag_values)`` and
``main(argv, flag_values)`` and ends with::

    if __name__ == "__main__":
        cli.run_command(define_flags, main)

:func:`run_command` is the shell entry point (absl's ``app.run`` with the
global flags, so ``--helpfull`` and absl's logging flags work);
:func:`invoke` runs the same command inside the current process with a
private ``FlagValues`` (tests, notebooks, other commands), returning its exit
code instead of leaving Python.

Either way a user mistake ends as one line on stderr, ``error: <file or
flag>: <problem>``, with exit code 2 and no traceback: an
:class:`tfpanc.errors.InputError` raised by the command, and absl's own flag
parse errors (unknown flag, bad value, missing flagfile), whose text and
"did you mean" suggestion are kept.
"""

from __future__ import annotations

import sys

from absl import app, flags

from tfpanc.errors import InputError

USER_ERROR = 2
INTERRUPTED = 130


def _flag_error_line(error):
    text = " ".join(str(error).split())
    return text if text.startswith("error:") else f"error: {text}"


def _run_main(main, argv, flag_values):
    try:
        main(argv, flag_values)
    except InputError as e:
        print(e.one_line(), file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 0


def invoke(define_flags, main, argv):
    """Runs a command in this process; returns its exit code.

    Args:
        define_flags: the command's ``define_flags(flag_values)``.
        main: the command's ``main(argv, flag_values)``.
        argv: the arguments without the program name, e.g.
            ``["--input=ct.nii.gz", "--output=mask.nii.gz"]``.

    Example:
    >>> def define(fv): flags.DEFINE_integer("n", 1, "a number", flag_values=fv)
    >>> def main(argv, fv): print(fv.n * 2)
    >>> invoke(define, main, ["--n=21"])
    42
    0
    >>> invoke(define, main, ["--n=x"])  # the error line goes to stderr
    2
    """
    fv = flags.FlagValues()
    define_flags(fv)
    try:
        rest = fv(["tfpanc"] + list(argv))
    except flags.Error as e:
        print(_flag_error_line(e), file=sys.stderr)
        return USER_ERROR
    return _run_main(main, rest, fv)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(_flag_error_line(e), file=sys.stderr)
        sys.exit(USER_ERROR)


def run_command(define_flags, main):
    """The ``__main__`` entry point of a command: parses ``sys.argv`` and exits."""
    define_flags(flags.FLAGS)

    def absl_main(argv):
        sys.exit(_run_main(main, argv, flags.FLAGS))

    app.run(absl_main, flags_parser=_parse_flags)
