"""HTTP layer of the gateway: dependencies and one router per resource."""

from __future__ import annotations
