"""Start-up of the `shipper` command (and of `python -m shipper`): heavy imports run with the
cyclic garbage collector paused, and in the command's own process what they made is then frozen
(gc.freeze: left out of every later collection); and the interpreter lock changes hands sooner.

Start-up imports pydantic, httpx, prometheus-client and a source's client library (the Google
clients, kubernetes): some 10^5 objects that live as long as the process. Collections while
they are made find no garbage, and every later full collection, including the one at exit,
would scan them again. Tests call `shipper.cli.main` in their own process, which is not frozen.

A pass reads and encodes on one thread while another pushes (shipper.push_queue): when Loki
answers, the push thread waits for the lock held by the busy reader, by default up to 5 ms
(sys.getswitchinterval) before the reader is asked to let go, and the reader may be blocked on
that very answer (pushes in flight are bounded). At 1 ms, `shipper once` of 300k lines into the
real Loki ran 6-11 % faster at the same CPU (bench/shipper_rounds.py's rounds, alternated with
the default through a throwaway toggle; docs/performance.md)."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

from shipper.records import gc_paused

_freeze_imports = False  # set by run(): only the command's own process freezes
LOCK_SWITCH_INTERVAL_S = 0.001


@contextlib.contextmanager
def importing() -> Iterator[None]:
    """Around imports of long-lived modules (the CLI, a source's client library)."""
    with gc_paused():
        try:
            yield
        finally:
            if _freeze_imports:
                gc.freeze()


def run() -> int:
    global _freeze_imports
    _freeze_imports = True
    sys.setswitchinterval(LOCK_SWITCH_INTERVAL_S)
    with importing():
        from shipper.cli import main
    return main()
