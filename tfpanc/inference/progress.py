"""Progress of a long prediction: units done, time elapsed, time left.

``predict`` wraps each input in :func:`reporting`; the loops that take the
time (:func:`tfpanc.inference.slicewise.predict_slices`,
:func:`tfpanc.inference.sliding_window.sliding_window_inference`) call
:func:`advance` after each batch. On a terminal one line is redrawn in
place; otherwise (a log file, CI) a line is printed at most every
``every`` seconds, so a short prediction prints nothing and a long one
says where it is. Outside :func:`reporting` :func:`advance` does nothing.

Example:
>>> import io
>>> out = io.StringIO()
>>> with reporting("ct.nii.gz", stream=out, every=0.0):
...     for done in (2, 4):
...         advance(done, 4, "slices")
>>> out.getvalue().splitlines()[-1].split(",")[0]
'ct.nii.gz: slices 4/4 (100%)'
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

_ACTIVE = threading.local()


class Progress:
    """Prints how far one input's prediction is.

    Args:
        label: what is predicted (the input's name).
        stream: where to print; default stdout.
        every: seconds between lines when ``stream`` is not a terminal.
    """

    def __init__(self, label, stream=None, every=10.0):
        self.label = label
        self.stream = sys.stdout if stream is None else stream
        self.every = float(every)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stage = None
        self._stage_start = self._last = time.monotonic()
        self._open_line = False

    def update(self, done, total, unit):
        now = time.monotonic()
        if unit != self._stage:  # a new stage (coarse slices, then windows...): its own clock
            self._stage, self._stage_start = unit, now
        elapsed = now - self._stage_start
        left = elapsed / done * (total - done) if done else float("nan")
        text = (f"{self.label}: {unit} {done}/{total} ({100 * done // max(total, 1)}%), "
                f"{elapsed:.0f} s elapsed, about {left:.0f} s left")
        if self.tty:
            self.stream.write("\r" + text + ("\n" if done >= total else ""))
            self._open_line = done < total
        elif now - self._last >= self.every:
            self.stream.write(text + "\n")
            self._last = now
        else:
            return
        self.stream.flush()

    def close(self):
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()


@contextlib.contextmanager
def reporting(label, stream=None, every=10.0):
    """Reports :func:`advance` calls made inside the block for ``label``."""
    previous = getattr(_ACTIVE, "progress", None)
    _ACTIVE.progress = progress = Progress(label, stream, every)
    try:
        yield progress
    finally:
        progress.close()
        _ACTIVE.progress = previous


def advance(done, total, unit):
    """``done`` of ``total`` ``unit`` (e.g. ``"windows"``) are finished."""
    progress = getattr(_ACTIVE, "progress", None)
    if progress is not None:
        progress.update(int(done), int(total), unit)
