"""Time budgets for SymPy's exact work, which can run for minutes on a small expression.

`time_limit(s)` raises GaveUp in its block after s seconds (SIGALRM: the main thread of a Unix
process, where the CLI, the pytest plugin and each -j worker run; elsewhere no limit). SymPy's exact
work runs Python code, which a signal interrupts between steps. Limits nest: an inner one that ends
sooner (a pretty form tried for a second) runs inside an outer one (the case's budget), and when it
ends the outer one is re-armed with what it has left. `spent()` tells whether a GaveUp caught for an
inner limit was really the outer one's.

Python swallows an exception raised where nothing can catch it: a gc callback (hypothesis registers
one), a __del__, a weakref callback; a library's bare `except` swallows it too. So the alarm fires
again every few milliseconds until its block has ended, and it raises only inside a block whose
deadline has passed and never on the way out of one (this module, contextlib).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class GaveUp(Exception):
    """The exact work ran out of its time budget."""


# The deadlines (time.monotonic()) of the limits now running, outermost first; each is sooner.
_deadlines: list[float] = []


# How soon the alarm fires again after a GaveUp that may have been swallowed.
_AGAIN_SECONDS = 0.02
_EXIT_PATH = {__file__, contextlib.__file__}


def _expired(signum: int, frame: FrameType | None) -> None:
    if not _deadlines:  # an alarm already on its way when the last block ended
        return
    now = time.monotonic()
    if _deadlines[-1] > now:  # an enclosing limit's, delivered after the inner block ended: not yet
        signal.setitimer(signal.ITIMER_REAL, max(_deadlines[-1] - now, 1e-6))
        return
    signal.setitimer(signal.ITIMER_REAL, _AGAIN_SECONDS)
    if frame is not None and frame.f_code.co_filename in _EXIT_PATH:
        return  # the block is ending already; raising here would skip its clean-up
    raise GaveUp()


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        # someone else's timer (not ours) is kept as it is
        and (bool(_deadlines) or signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    )
    if not usable:
        yield
        return
    assert seconds is not None
    deadline = time.monotonic() + seconds
    if _deadlines and _deadlines[-1] <= deadline:  # an enclosing limit ends sooner: it stands
        yield
        return
    previous = signal.signal(signal.SIGALRM, _expired) if not _deadlines else None
    _deadlines.append(deadline)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 1e-6))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _deadlines.pop()
        if _deadlines:  # the enclosing limit goes on with what it has left (at once if nothing)
            signal.setitimer(signal.ITIMER_REAL, max(_deadlines[-1] - time.monotonic(), 1e-6))
        else:
            signal.signal(signal.SIGALRM, previous)


def spent() -> bool:
    """Whether an enclosing limit has run out too (then its GaveUp must go on up)."""
    return bool(_deadlines) and _deadlines[-1] <= time.monotonic()


def gave_up_in(e: BaseException | None) -> bool:
    """e is a GaveUp, or what a library made of one landing inside it: the SystemError of SymPy's
    C-level calls ("returned a result with an exception set"), Lark's VisitError around its
    transformer's call."""
    seen = 0
    while e is not None and seen < 16:
        if isinstance(e, GaveUp):
            return True
        e = getattr(e, "orig_exc", None) or e.__cause__ or e.__context__
        seen += 1
    return False


def raised_in_sympy(e: BaseException) -> bool:
    """Whether the innermost frame of e's traceback is SymPy's own code."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}sympy{os.sep}" in tb.tb_frame.f_code.co_filename
