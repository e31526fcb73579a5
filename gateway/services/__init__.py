"""Clients and pure logic behind the routes; every network client is injected."""

from __future__ import annotations
