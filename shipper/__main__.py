from __future__ import annotations

from shipper.startup import run

raise SystemExit(run())
