"""Every LogQL query of grafana-dashboards/*.json, run by the real Loki (session fixture
`real_loki`) the way Grafana sends it: variables interpolated like Grafana's Loki datasource does,
range panels through query_range, instant ones through query, variable queries through the
label-values API.

Two passes over the same planted lines (DESIGN.md's labels, structured metadata included):
- every variable at "All", the search box empty: Loki accepts every query (200) and every panel
  shows something;
- this run's prefix, collection and namespace selected, three levels ticked and the run id typed
  into the search box: each panel shows exactly what was planted (counts, ratios, masked error
  templates, lines).
Prometheus panels are promtool's (tests/ops/test_dashboards.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest

from tests.ops.conftest import LabelSchema
from tests.ops.dashboards import DASHBOARDS, Target, interpolate, load_dashboard, targets
from tests.real_loki import RealLoki, run_id

LOG_MONITOR = next(path for path in DASHBOARDS if path.name == "log-monitor.json")
LOKI_TARGETS = [target for path in DASHBOARDS for target in targets(path, "loki")]
SECOND_NS = 1_000_000_000
# Grafana's default "Max lines" of a logs panel
LOGS_PANEL_MAX_LINES = 1000

# What each planted source logs per level: (lines, text after the run id, numbered by {n})
PLANTED_LEVELS = {
    "info": (6, "order {n} filled"),
    "warn": (2, "slippage {n} bps"),
    "error": (3, "order {n} rejected: insufficient margin"),
    "critical": (1, "position {n} liquidated"),
}
SOURCES = ("gcs", "firestore", "pod")
SHOWN_LEVELS = ("info", "error", "critical")  # the $level choice of the second pass
ERRORS = PLANTED_LEVELS["error"][0] + PLANTED_LEVELS["critical"][0]
ALL_LINES = sum(count for count, _ in PLANTED_LEVELS.values())
ALERT_EVENTS = 2
DIGESTS = 1
# Pass B's window: one step of Grafana's $__auto, all planted lines inside it
STEP_SECONDS = 300
PLANTED_BEFORE_SECONDS = 400
DEFAULT_RANGE_SECONDS = 3600


@dataclass(frozen=True)
class Planted:
    run: str
    start_ns: int  # the window of the second pass: exactly one step, holding every planted line
    end_ns: int

    @property
    def pod(self) -> str:
        return f"{self.run}-0"


def stream_labels(source: str, run: str, level: str) -> dict[str, str]:
    """DESIGN.md's stream labels of each source, with the run id where a dashboard variable selects."""
    common = {"source": source, "service_name": run, "level": level}
    if source == "gcs":
        return {**common, "bucket": "demo-logs", "prefix": run}
    if source == "firestore":
        return {**common, "collection": run}
    return {**common, "namespace": run, "pod": f"{run}-0", "container": "runner"}


def structured_metadata(source: str, run: str, index: int) -> dict[str, str]:
    if source == "gcs":
        return {"object": f"{run}/2026-12-05.jsonl", "generation": "1764892800000000", "line_no": str(index)}
    if source == "firestore":
        return {"doc_id": f"doc-{index}", "update_time": "2026-12-05T10:00:00.000000Z"}
    return {"node": "node-a", "restart_count": "0"}


def planted_streams(run: str, base_ns: int) -> list[dict[str, Any]]:
    streams = []
    index = 0
    for source in SOURCES:
        for level, (count, text) in PLANTED_LEVELS.items():
            values = []
            for _ in range(count):
                line = f"{run} " + text.format(n=4400 + index)
                metadata = structured_metadata(source, run, index)
                values.append([str(base_ns + index * 10_000_000), line, metadata])
                index += 1
            streams.append({"stream": stream_labels(source, run, level), "values": values})
    events = {"alert": ("warn", ALERT_EVENTS), "summary": ("info", DIGESTS)}
    for kind, (level, count) in events.items():
        labels = {"source": "gateway", "service_name": "gateway", "kind": kind, "level": level}
        values = [[str(base_ns + (index + i) * 10_000_000), f'{{"kind":"{kind}","run":"{run}","n":{i}}}']
                  for i in range(count)]
        index += count
        streams.append({"stream": labels, "values": values})
    return streams


@pytest.fixture(scope="module")
def planted(real_loki: RealLoki, label_schema: LabelSchema) -> Planted:
    run = run_id("run")
    now_s = time.time_ns() // SECOND_NS
    start_ns = (now_s - PLANTED_BEFORE_SECONDS) * SECOND_NS
    streams = planted_streams(run, start_ns + SECOND_NS)
    for stream in streams:  # the planted data is what the shipper and gateway send
        assert set(stream["stream"]) <= label_schema.stream_labels, stream["stream"]
        for value in stream["values"]:
            assert set(value[2] if len(value) > 2 else {}) <= label_schema.metadata, value
    response = real_loki.push_raw({"streams": streams})
    assert response.status_code == 204, response.text
    return Planted(run, start_ns, start_ns + STEP_SECONDS * SECOND_NS)


# --- running a target as Grafana does -------------------------------------------------------------

def run_target(loki: RealLoki, target: Target, expr: str, start_ns: int, end_ns: int,
               step_seconds: int) -> dict[str, Any]:
    """Grafana's request for the panel: logs -> query_range backward with the panel's line cap;
    a range metric -> query_range with the step; an instant metric -> query at the range's end."""
    if target.query_type == "instant":
        response = loki.http.get("/loki/api/v1/query", params={"query": expr, "time": end_ns})
    else:
        params: dict[str, Any] = {"query": expr, "start": start_ns, "end": end_ns}
        if target.panel_type == "logs":
            params.update(limit=LOGS_PANEL_MAX_LINES, direction="backward")
        else:
            params["step"] = f"{step_seconds}s"
        response = loki.http.get("/loki/api/v1/query_range", params=params)
    assert response.status_code == 200, (
        f"{target.name}: Loki answered {response.status_code}: {response.text}")
    data: dict[str, Any] = response.json()["data"]
    return data


def builtins(range_seconds: int, step_seconds: int, query_type: str) -> dict[str, str]:
    """Grafana's built-ins for a dashboard range and step; $__auto is the step of a range query
    and the whole range of an instant one."""
    step, whole = f"{step_seconds}s", f"{range_seconds}s"
    return {"__auto": whole if query_type == "instant" else step, "__interval": step,
            "__rate_interval": step, "__range": whole, "__range_s": str(range_seconds),
            "__range_ms": str(range_seconds * 1000), "__interval_ms": str(step_seconds * 1000)}


def series(data: Mapping[str, Any]) -> dict[tuple[tuple[str, str], ...], list[float]]:
    """Metric answer (vector or matrix) -> label set -> its values."""
    found: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for item in data["result"]:
        key = tuple(sorted(item["metric"].items()))
        points = item["values"] if "values" in item else [item["value"]]
        found.setdefault(key, []).extend(float(value) for _, value in points)
    return found


def lines(data: Mapping[str, Any]) -> list[str]:
    assert data["resultType"] == "streams", data["resultType"]
    return [value[1] for stream in data["result"] for value in stream["values"]]


def test_the_dashboards_have_loki_targets_of_every_kind() -> None:
    kinds = {(target.panel_type, target.query_type) for target in LOKI_TARGETS}
    assert {("logs", "range"), ("timeseries", "range"), ("bargauge", "instant")} <= kinds
    assert len(LOKI_TARGETS) >= 17


# --- pass A: everything at "All" ------------------------------------------------------------------

@pytest.mark.parametrize("target", LOKI_TARGETS, ids=lambda t: t.name)
def test_loki_runs_every_panel_query_and_it_shows_something(
        real_loki: RealLoki, planted: Planted, target: Target) -> None:
    board = load_dashboard(LOG_MONITOR.with_name(target.board))
    step = 60
    expr = interpolate(target.expr, board, {}, builtins(DEFAULT_RANGE_SECONDS, step, target.query_type))
    end_ns = time.time_ns()
    start_ns = end_ns - DEFAULT_RANGE_SECONDS * SECOND_NS
    if target.query_type == "instant":  # what the brief of every query asks too: query_range -> 200
        run_target(real_loki, replace(target, query_type="range"), expr, start_ns, end_ns, step)
    data = run_target(real_loki, target, expr, start_ns, end_ns, step)
    assert data["result"], f"{target.name} shows nothing: {expr}"


# --- pass B: this run's data selected -------------------------------------------------------------

def expected_panels(planted: Planted) -> dict[str, tuple[str, Any]]:
    """Panel title -> ("series", {labels: total}) | ("ratio", {labels: value})
    | ("at_least", {labels: total}) | ("lines", count)."""
    run = planted.run
    shown = {level: PLANTED_LEVELS[level][0] for level in SHOWN_LEVELS}
    by_level = {(("level", level),): float(n) for level, n in shown.items()}
    templates = {(("template", "run<N> order <N> rejected: insufficient margin"),): 3.0,
                 (("template", "run<N> position <N> liquidated"),): 1.0}
    ratio = ERRORS / ALL_LINES
    expected: dict[str, tuple[str, Any]] = {
        "Log volume by source and level": ("series", {
            **{(("level", level), ("source", source)): float(n)
               for source in SOURCES for level, n in shown.items()},
            (("level", "info"), ("source", "gateway")): float(DIGESTS),  # alert events are warn
        }),
        "Errors by service": ("series", {
            (("service_name", run), ("source", source)): float(ERRORS) for source in SOURCES}),
        "Alert events": ("at_least", {(("level", "warn"),): float(ALERT_EVENTS)}),  # no search box
        "Alert events: log": ("lines", ALERT_EVENTS),
        "Digests (gateway summaries)": ("lines", DIGESTS),
    }
    rows = {"GCS": ("prefix", run), "Firestore": ("collection", run), "Pods": ("pod", planted.pod)}
    for row, rate_key in rows.items():
        expected[f"{row}: log volume by level"] = ("series", by_level)
        expected[f"{row}: error rate"] = ("ratio", {(rate_key,): ratio})
        expected[f"{row}: top error patterns"] = ("series", templates)
        expected[f"{row}: logs"] = ("lines", sum(shown.values()))
    return expected


def test_every_loki_panel_has_an_expectation(planted: Planted) -> None:
    assert {target.panel for target in LOKI_TARGETS} == set(expected_panels(planted))


@pytest.mark.parametrize("target", LOKI_TARGETS, ids=lambda t: t.name)
def test_each_panel_shows_exactly_the_planted_data(
        real_loki: RealLoki, planted: Planted, target: Target) -> None:
    board = load_dashboard(LOG_MONITOR.with_name(target.board))
    chosen: dict[str, str | Sequence[str] | None] = {
        "prefix": planted.run, "collection": planted.run, "namespace": planted.run,
        "level": list(SHOWN_LEVELS), "search": planted.run,
    }
    expr = interpolate(target.expr, board, chosen, builtins(STEP_SECONDS, STEP_SECONDS, target.query_type))
    data = run_target(real_loki, target, expr, planted.start_ns, planted.end_ns, STEP_SECONDS)
    kind, expected = expected_panels(planted)[target.panel]
    if kind == "lines":
        shown = lines(data)
        assert len(shown) == expected and all(planted.run in line for line in shown), (expr, shown)
        return
    found = series(data)
    legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.legend or ""))
    for key in found:  # the legend names labels every series has, or Grafana shows "{{x}}" blanks
        assert legend_labels <= {name for name, _ in key}, (target.legend, key)
    if kind == "ratio":
        assert set(found) == set(expected), (expr, found)
        for key, values in found.items():
            assert values and all(v == pytest.approx(expected[key]) for v in values), (expr, key, values)
    elif kind == "at_least":
        for key, total in expected.items():
            assert sum(found.get(key, [])) >= total, (expr, found)
    else:
        assert {key: sum(values) for key, values in found.items()} == expected, expr


def test_variable_queries_list_the_planted_values(real_loki: RealLoki, planted: Planted) -> None:
    """label_values(selector, label) is Grafana's label-values API call with the selector."""
    board = load_dashboard(LOG_MONITOR)
    expected = {"source": set(SOURCES) | {"gateway"}, "prefix": {planted.run},
                "collection": {planted.run}, "namespace": {planted.run}, "pod": {planted.pod}}
    checked = set()
    for variable in board["templating"]["list"]:
        if variable["type"] != "query" or variable["datasource"]["type"] != "loki":
            continue
        query = interpolate(variable["query"], board, {"namespace": planted.run}, {})
        inner = query.removeprefix("label_values(").removesuffix(")")
        selector, _, label = inner.rpartition(",")
        params = {"start": planted.start_ns, "end": planted.end_ns}
        if selector:
            params["query"] = selector.strip()
        response = real_loki.http.get(f"/loki/api/v1/label/{label.strip()}/values", params=params)
        assert response.status_code == 200, f"{variable['name']}: {response.text}"
        values = set(response.json().get("data") or [])
        if variable["name"] == "pod":  # namespace chosen: only this run's pod
            assert values == expected["pod"], values
        else:
            assert expected[variable["name"]] <= values, (variable["name"], values)
        checked.add(variable["name"])
    assert checked == set(expected)
