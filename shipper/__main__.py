from __future__ import annotations

from shipper.cli import main

raise SystemExit(main())
