"""The gateway's layers, read from the source with `ast`: routes stand on services and never on
one another; MCP tools stand on services, not on routes; services know nothing of HTTP (no
gateway.api, gateway.errors, FastAPI, Starlette or ApiError: they raise the kinds of
gateway.services.errors)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROUTES = "gateway.api.routes"
SERVICE_BANNED = ("gateway.api", "gateway.errors", "fastapi", "starlette")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str) -> set[str]:
    """Every module `source` (of `module`) imports; for `from m import n` both m and m.n, as n may
    be a module. Relative imports are resolved."""
    package = module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def uses_api_error(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id == "ApiError":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "ApiError":
            return True
        if isinstance(node, ast.ImportFrom) and any(alias.name == "ApiError" for alias in node.names):
            return True
    return False


def route_problems(source: str, module: str) -> list[str]:
    """Another route module (or the routes package) imported by a route module."""
    return sorted(name for name in imported(source, module) if within(name, ROUTES) and name != module)


def mcp_problems(source: str, module: str) -> list[str]:
    return sorted(name for name in imported(source, module) if within(name, ROUTES))


def service_problems(source: str, module: str) -> list[str]:
    """HTTP in a service: gateway.api, gateway.errors, FastAPI or Starlette imported, ApiError used."""
    problems = sorted(
        name for name in imported(source, module) if any(within(name, banned) for banned in SERVICE_BANNED)
    )
    return [*problems, "ApiError"] if uses_api_error(source) else problems


def problems_under(folder: str, check: object) -> dict[str, list[str]]:
    paths = sorted((ROOT / folder).rglob("*.py"))
    assert paths, f"no modules under {folder}"
    assert callable(check)
    found = {module_name(p): check(p.read_text(), module_name(p)) for p in paths}
    return {module: problems for module, problems in found.items() if problems}


def test_no_route_imports_another_route() -> None:
    assert problems_under("gateway/api/routes", route_problems) == {}


def test_mcp_tools_stand_on_services_not_routes() -> None:
    assert problems_under("gateway/mcp", mcp_problems) == {}


def test_services_know_nothing_of_http() -> None:
    assert problems_under("gateway/services", service_problems) == {}


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("from gateway.api.routes.logs import x\n", True),
        ("from gateway.api.routes import logs\n", True),
        ("from . import logs\n", True),
        ("from .logs import prepare_for\n", True),
        ("import gateway.api.routes.tail\n", True),
        ("from gateway.api.deps import LokiDep\nfrom gateway.services.query import PageAsk\n", False),
    ],
)
def test_the_route_check_sees_every_spelling(source: str, flagged: bool) -> None:
    assert bool(route_problems(source, "gateway.api.routes.logql")) is flagged


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("from fastapi import Request\n", True),
        ("from starlette.websockets import WebSocket\n", True),
        ("import gateway.api.deps\n", True),
        ("from gateway.errors import Failure\n", True),
        ("def f():\n    raise errors.ApiError(400, 'x', 'y')\n", True),
        ("from ..api import deps\n", True),
        ("from gateway.services.errors import QueryError\nraise QueryError('x', 'y')\n", False),
    ],
)
def test_the_service_check_sees_http(source: str, flagged: bool) -> None:
    assert bool(service_problems(source, "gateway.services.probe")) is flagged
