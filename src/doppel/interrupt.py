"""Ctrl-C that cannot be lost: the Stop button of doppel ui and a terminal's Ctrl-C both send SIGINT.

Python turns SIGINT into a KeyboardInterrupt raised wherever the main thread is. When that is inside
a `__del__` finalizer or a weakref callback, Python prints "Exception ignored in ..." and carries on:
the request is lost, and a training run keeps training (seen once in CI: the UI's worker had to be
killed 60 s after Stop). `install()` remembers the request as well as raising it, and the long loops
call `check()` once per step or frame, which raises it again if it went missing. A loop that is
already unwinding (a training run saving its checkpoint) calls no `check()`, so nothing interrupts
the save.

`install(also=(signal.SIGTERM,))` treats `kill` the same way (`doppel pretrain`, run in the
background). `install(dump_after_s=...)` also arms a stack dump of every thread to stderr that many seconds after
the first request, so a stop that still hangs says where in the log instead of nothing.
"""
from __future__ import annotations

import faulthandler
import signal
import sys
import threading

_requested = False
_dump_after_s: float | None = None


def _handler(signum, frame) -> None:
    global _requested
    first = not _requested
    _requested = True
    if first and _dump_after_s:
        faulthandler.dump_traceback_later(_dump_after_s, exit=False, file=sys.stderr)
    raise KeyboardInterrupt


def install(dump_after_s: float | None = None, also: tuple[int, ...] = ()) -> bool:
    """Handle SIGINT as above (also where it was ignored, as under nohup), and the signals in `also` the
    same way (SIGTERM, for runs stopped with `kill`); False off the main thread."""
    global _dump_after_s
    if threading.current_thread() is not threading.main_thread():
        return False
    _dump_after_s = dump_after_s
    for sig in (signal.SIGINT, *also):
        signal.signal(sig, _handler)
    return True


def requested() -> bool:
    """Whether SIGINT has arrived since `install()` (or `reset()`)."""
    return _requested


def check() -> None:
    """Raise KeyboardInterrupt if a SIGINT arrived: a no-op unless one was lost on its way."""
    if _requested:
        raise KeyboardInterrupt


def reset() -> None:
    """Forget a request (for a process that handled it and goes on, such as a test)."""
    global _requested
    _requested = False
    faulthandler.cancel_dump_traceback_later()
