"""Start-up of the `shipper` command (and of `python -m shipper`): heavy imports run with the
cyclic garbage collector paused, and in the command's own process what they made is then frozen
(gc.freeze: left out of every later collection).

Start-up imports pydantic, httpx, prometheus-client and a source's client library (the Google
clients, kubernetes): some 10^5 objects that live as long as the process. Collections while
they are made find no garbage, and every later full collection, including the one at exit,
would scan them again. Tests call `shipper.cli.main` in their own process, which is not frozen."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_freeze_imports = False  # set by run(): only the command's own process freezes


@contextlib.contextmanager
def importing() -> Iterator[None]:
    """Around imports of long-lived modules (the CLI, a source's client library)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _freeze_imports:
            gc.freeze()
        if was_enabled:
            gc.enable()


def run() -> int:
    global _freeze_imports
    _freeze_imports = True
    with importing():
        from shipper.cli import main
    return main()
