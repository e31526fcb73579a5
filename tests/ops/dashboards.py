"""Reading grafana-dashboards/*.json as Grafana does: panels, their targets, and a target's
expression with the dashboard's variables interpolated the way Grafana's Loki datasource does it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.ops.conftest import REPO

DASHBOARDS = sorted((REPO / "grafana-dashboards").glob("*.json"))
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
# Grafana's Loki datasource escapes these in a multi-value or "All"-able variable's values.
_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|{}\[\]])")


def load_dashboard(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def content_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in walk_panels(board["panels"]) if panel["type"] != "row"]


def rows_with_panels(board: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Row title -> panels under it (flat layout: the panels after a row until the next row)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] | None = None
    for panel in board["panels"]:
        if panel["type"] == "row":
            current = rows.setdefault(panel["title"], list(panel.get("panels", [])))
        elif current is not None:
            current.append(panel)
    return rows


@dataclass(frozen=True)
class Target:
    """One query of one panel."""

    board: str
    panel: str
    panel_type: str
    datasource: str
    query_type: str  # "range" or "instant" (Grafana's Loki queryType)
    expr: str
    legend: str | None

    @property
    def name(self) -> str:
        return f"{self.board}/{self.panel}"


def targets(path: Path, datasource_type: str) -> list[Target]:
    board = load_dashboard(path)
    found = []
    for panel in content_panels(board):
        for target in panel.get("targets", []):
            source = (target.get("datasource") or panel["datasource"])["type"]
            if source == datasource_type:
                found.append(Target(path.name, panel["title"], panel["type"], source,
                                    target.get("queryType", "range"), target["expr"],
                                    target.get("legendFormat")))
    return found


def expressions(board: dict[str, Any], datasource_type: str) -> list[str]:
    found = []
    for panel in content_panels(board):
        for target in panel.get("targets", []):
            if (target.get("datasource") or panel["datasource"])["type"] == datasource_type:
                found.append(target["expr"])
    return found


def variable_queries(board: dict[str, Any], datasource_type: str) -> list[str]:
    return [v["query"] for v in board["templating"]["list"]
            if v["type"] == "query" and v["datasource"]["type"] == datasource_type]


def loki_variable_value(variable: Mapping[str, Any], chosen: str | Sequence[str] | None) -> str:
    """A variable's text in a Loki query as Grafana writes it: `None` is "All" (the variable's
    allValue), a list is several selected values (`(a|b)`, regex-escaped), a string one value
    (escaped too where the variable can be multi-valued, since it then sits in a `=~`)."""
    if chosen is None:
        return str(variable.get("allValue") or ".*")
    if variable.get("multi") or variable.get("includeAll"):
        values = [chosen] if isinstance(chosen, str) else list(chosen)
        escaped = [_REGEX_SPECIAL.sub(r"\\\1", value) for value in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    return chosen if isinstance(chosen, str) else "|".join(chosen)


def interpolate(expr: str, board: Mapping[str, Any], chosen: Mapping[str, str | Sequence[str] | None],
                builtins: Mapping[str, str]) -> str:
    """`expr` with the dashboard's variables set to `chosen` (missing ones: "All", textboxes empty)
    and Grafana's built-ins (`__auto`, `__range`, ...) to `builtins`."""
    variables = {v["name"]: v for v in board["templating"]["list"]}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in builtins:
            return builtins[name]
        variable = variables[name]  # an undefined variable is a KeyError: test_dashboards checks that too
        if variable["type"] == "textbox":
            return str(chosen.get(name) or "")
        return loki_variable_value(variable, chosen.get(name))

    return VARIABLE.sub(replace, expr)
