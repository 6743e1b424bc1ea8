"""Progress reporting for long work (one home for every progress bar of neurorl).

On a terminal, :func:`progress_bar` is a tqdm bar. When the stream (stderr by default) is not a terminal -- a log
file, a pipe, a notebook capturing output -- it writes plain lines instead of carriage-return redraws: one when the
work starts, one at each quarter of the total, and one when it ends. Bars count work done (subjects fitted, draws
scored, trials simulated), never an upper limit such as a maximum number of iterations.

Functions
---------
:func:`progress_bar`
    A bar with ``update(k)``, ``set_done(k)``, ``set_postfix(**fields)`` and ``close()``, or None when disabled.
:func:`iterate`
    Wrap an iterable (one step per item).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator

__all__ = ["progress_bar", "iterate", "PlainProgress", "is_terminal"]


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default ``sys.stderr``) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """Progress as plain lines (for streams that are not terminals).

    Parameters
    ----------
    desc : str
        What is being done (starts every line).
    total : int or None
        Units of work in all; None when unknown (then only the start and the end are reported).
    unit : str
        Name of one unit of work (``"fits"``, ``"draws"``, ...).
    stream : file, optional
        Default ``sys.stderr``.
    """

    def __init__(self, desc: str, total: int | None, unit: str = "it", stream=None):
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = sys.stderr if stream is None else stream
        self.n = 0
        self._t0 = time.perf_counter()
        self._next_quarter = 1
        self._closed = False
        self._write(f"started ({total} {unit})" if total else "started")

    def _write(self, text: str) -> None:
        print(f"{self.desc}: {text}", file=self.stream, flush=True)

    def update(self, k: int = 1) -> None:
        """Add ``k`` units of work done."""
        self.set_done(self.n + k)

    def set_done(self, k: int) -> None:
        """Set the units of work done to ``k``."""
        self.n = int(k)
        if self.total and self._next_quarter < 4 and self.n >= self._next_quarter * self.total / 4:
            while self._next_quarter < 4 and self.n >= self._next_quarter * self.total / 4:
                self._next_quarter += 1
            if self.n < self.total:  # the end is reported by close()
                self._write(f"{self.n}/{self.total} {self.unit}")

    def set_postfix(self, **fields: Any) -> None:
        """Accepted for tqdm compatibility; plain output shows only the counts."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        self._write(f"done, {done} {self.unit} in {time.perf_counter() - self._t0:.1f} s")


class _TqdmProgress:
    """tqdm with :meth:`set_done`."""

    def __init__(self, desc: str, total: int | None, unit: str, stream=None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit=f" {unit}", leave=False, file=stream)

    def update(self, k: int = 1) -> None:
        self.bar.update(k)

    def set_done(self, k: int) -> None:
        if int(k) != self.bar.n:
            self.bar.update(int(k) - self.bar.n)

    def set_postfix(self, **fields: Any) -> None:
        self.bar.set_postfix(**fields)

    def close(self) -> None:
        self.bar.close()

    @property
    def n(self) -> int:
        return int(self.bar.n)


def progress_bar(enabled: bool, desc: str, total: int | None, *, unit: str = "it", stream=None):
    """A progress reporter, or None when ``enabled`` is false.

    Parameters
    ----------
    enabled : bool
    desc : str
    total : int or None
        Units of work in all (None: unknown).
    unit : str
        Name of one unit of work.
    stream : file, optional
        Where to write (default ``sys.stderr``): a tqdm bar on a terminal, plain lines otherwise.

    Returns
    -------
    object or None
        With ``update(k)``, ``set_done(k)``, ``set_postfix(**fields)``, ``close()`` and ``n``.
    """
    if not enabled:
        return None
    if is_terminal(stream):
        return _TqdmProgress(desc, total, unit, stream)
    return PlainProgress(desc, total, unit, stream)


def iterate(iterable: Iterable, enabled: bool, desc: str, *, total: int | None = None, unit: str = "it",
            stream=None) -> Iterator:
    """Yield from ``iterable``, reporting one unit of work per item (see :func:`progress_bar`)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    bar = progress_bar(enabled, desc, total, unit=unit, stream=stream)
    if bar is None:
        yield from iterable
        return
    try:
        for item in iterable:
            yield item
            bar.update(1)
    finally:
        bar.close()
