"""grafana-dashboards/*.json and their provisioning: every datasource uid exists, every variable is
used (and nothing undefined is), LogQL uses only the labels of DESIGN.md, PromQL parses (real
promtool) and names only metrics the project exports."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from shipper.models import LEVELS
from tests.ops.conftest import REPO, LabelSchema, RenderedCompose, load_yaml, require_tool
from tests.ops.dashboards import (
    DASHBOARDS,
    VARIABLE,
    content_panels,
    expressions,
    load_dashboard,
    rows_with_panels,
    variable_queries,
)

PROVISIONING = REPO / "ops-stack/grafana/provisioning"
EXPECTED_FILES = {"log-monitor.json", "shipper.json", "gateway.json"}
GRAFANA_BUILTINS = {"__auto", "__range", "__rate_interval", "__interval", "__interval_ms", "__range_s",
                    "__range_ms", "__all"}
# Prometheus' own per-target series, always there for a scrape job.
PROMETHEUS_SYNTHETIC = {"up"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "bool", "offset", "inf", "nan", "atan2"}
PROMTOOL_TIMEOUT_SECONDS = 60

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|`[^`]*`)')
_ONE_MATCHER = r'\w+\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"'
_SELECTOR = re.compile(rf"\{{\s*{_ONE_MATCHER}(?:\s*,\s*{_ONE_MATCHER})*\s*\}}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LABEL_FILTER = re.compile(r"\|\s*(\w+)\s*(?:=~|!~|!=|==|=|>=|<=|>|<)")
_DEFINED_LABEL = re.compile(r"\|\s*label_format\s+(\w+)\s*=")
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()")
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def substitute_variables(expr: str, board: dict[str, Any]) -> str:
    """An expression as Grafana would send it with every variable at its "All" value."""
    all_values = {v["name"]: v.get("allValue") or ".*" for v in board["templating"]["list"]}
    intervals = {"__auto": "1m", "__range": "1h", "__rate_interval": "1m", "__interval": "1m"}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return intervals.get(name) or all_values.get(name, "x")

    return VARIABLE.sub(replace, expr)


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    return {path.name: load_dashboard(path) for path in DASHBOARDS}


@pytest.fixture(scope="module")
def datasources() -> dict[str, dict[str, Any]]:
    found = {}
    for path in (PROVISIONING / "datasources").glob("*.y*ml"):
        for source in load_yaml(path)["datasources"]:
            found[source["uid"]] = source
    return found


# --- exported metric names ----------------------------------------------------------------------

def exposition_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry's collectors expose, labelled children or not."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "summary": ("_count", "_sum", ""), "gauge": ("",), "info": ("_info",),
                "gaugehistogram": ("_bucket", "_gcount", "_gsum"), "stateset": ("",), "unknown": ("",)}
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def project_registry(module: str) -> CollectorRegistry:
    """The module's registry; an import error fails the test (a skip would hide a broken module)."""
    registry: CollectorRegistry = importlib.import_module(module).REGISTRY
    return registry


def promql_metric_names(expr: str) -> set[str]:
    stripped = _STRING.sub('""', expr)
    stripped = re.sub(r"\{[^}]*\}", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)
    stripped = _GROUPING.sub("", stripped)
    return {name for name in _IDENTIFIER.findall(stripped)
            if name not in PROMQL_WORDS and not re.fullmatch(r"\d.*", name)}


def logql_labels(expr: str) -> tuple[set[str], set[str], set[str], dict[str, set[str]]]:
    """(stream selector labels, labels used after the selector, labels the query defines itself,
    literal values of equality matchers by label)."""
    selector_labels: set[str] = set()
    values: dict[str, set[str]] = {}
    for selector in _SELECTOR.findall(expr):
        for name, op, value in _MATCHER.findall(selector):
            selector_labels.add(name)
            if op == "=":
                values.setdefault(name, set()).add(value.strip('"`'))
    rest = _SELECTOR.sub("{}", expr)
    defined = set(_DEFINED_LABEL.findall(rest))
    rest = _STRING.sub('""', rest)
    used = set(_LABEL_FILTER.findall(rest))
    for group in _GROUPING.findall(rest):
        used.update(label.strip() for label in group.split(",") if label.strip())
    return selector_labels, used, defined, values


# --- files and provisioning ----------------------------------------------------------------------

def test_one_dashboard_per_file_with_fixed_unique_uids(boards) -> None:
    assert set(boards) == EXPECTED_FILES
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        assert isinstance(board, dict) and board["title"] and board["panels"], name
        assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"]), name
        assert "id" not in board or board["id"] is None, f"{name}: a fixed id clashes across Grafanas"


def test_provider_loads_the_mounted_dashboards_folder(rendered_compose: RenderedCompose) -> None:
    files = (PROVISIONING / "dashboards").glob("*.y*ml")
    providers = [provider for path in files for provider in load_yaml(path)["providers"]]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    mounts = rendered_compose.mounts("grafana")
    assert mounts[providers[0]["options"]["path"]] == str(REPO / "grafana-dashboards")
    assert mounts["/etc/grafana/provisioning/dashboards"] == str(PROVISIONING / "dashboards")
    assert mounts["/etc/grafana/provisioning/datasources"] == str(PROVISIONING / "datasources")


def test_datasources_have_the_stable_uids(datasources, rendered_compose: RenderedCompose) -> None:
    assert {"loki", "prometheus", "alertmanager"} <= set(datasources)
    services = rendered_compose.config["services"]
    for uid, source in datasources.items():
        host = re.match(r"https?://([\w-]+):\d+", source["url"])
        assert host and host[1] in services, f"{uid} points at {source['url']}"
    assert datasources["loki"]["type"] == "loki" and datasources["prometheus"]["type"] == "prometheus"


def test_every_datasource_reference_exists(boards, datasources) -> None:
    for name, board in boards.items():
        for panel in content_panels(board):
            refs = [panel["datasource"], *(t.get("datasource") for t in panel.get("targets", []))]
            for ref in filter(None, refs):
                assert isinstance(ref, dict), f"{name}/{panel['title']}: datasource by name"
                assert ref["uid"] in datasources, f"{name}/{panel['title']}: unknown uid {ref['uid']}"
                assert ref["type"] == datasources[ref["uid"]]["type"], f"{name}/{panel['title']}"
        for variable in board["templating"]["list"]:
            if "datasource" in variable:
                assert variable["datasource"]["uid"] in datasources, f"{name}: variable {variable['name']}"


def test_every_variable_is_used_and_no_undefined_one(boards) -> None:
    for name, board in boards.items():
        defined = {v["name"] for v in board["templating"]["list"]}
        texts = [t.get("expr", "") for p in content_panels(board) for t in p.get("targets", [])]
        texts += [v.get("query", "") for v in board["templating"]["list"] if isinstance(v.get("query"), str)]
        referenced = {next(g for g in m.groups() if g) for text in texts for m in VARIABLE.finditer(text)}
        assert defined <= referenced, f"{name}: unused variables {sorted(defined - referenced)}"
        assert referenced - GRAFANA_BUILTINS <= defined, f"{name}: undefined {referenced - defined}"


# --- LogQL --------------------------------------------------------------------------------------

def test_logql_uses_only_the_labels_of_design_md(boards, label_schema: LabelSchema) -> None:
    checked = 0
    for name, board in boards.items():
        queries = expressions(board, "loki") + [
            m["selector"] or "" for q in variable_queries(board, "loki") if (m := _LABEL_VALUES.match(q))]
        for expr in queries:
            selector, used, defined, values = logql_labels(expr)
            assert selector <= label_schema.stream_labels, f"{name}: {expr}"
            assert used <= label_schema.stream_labels | label_schema.metadata | defined, f"{name}: {expr}"
            assert values.get("source", set()) <= label_schema.sources, f"{name}: {expr}"
            checked += 1
        for query in variable_queries(board, "loki"):
            match = _LABEL_VALUES.match(query)
            assert match and match["label"] in label_schema.stream_labels, f"{name}: {query}"
    assert checked >= 10


def test_level_values_are_the_shipper_levels(boards) -> None:
    board = boards["log-monitor.json"]
    level = next(v for v in board["templating"]["list"] if v["name"] == "level")
    assert tuple(level["query"].split(",")) == LEVELS
    for expr in expressions(board, "loki"):
        for literal in re.findall(r'level=~"([a-z|]+)"', expr):
            assert set(literal.split("|")) <= set(LEVELS), expr


def test_free_text_search_is_a_raw_string_so_quotes_cannot_break_the_query(boards) -> None:
    used = [expr for expr in expressions(boards["log-monitor.json"], "loki") if "$search" in expr]
    assert used
    for expr in used:
        # a backtick string takes `"` and `\` literally; only a backtick itself would end it
        assert "$search" not in expr.replace("|= `$search`", ""), expr


def test_log_monitor_has_a_row_per_source_and_the_summary(boards, label_schema: LabelSchema) -> None:
    rows = rows_with_panels(boards["log-monitor.json"])
    expected = {"GCS": {'source="gcs"'}, "Firestore": {'source="firestore"'}, "Pods": {'source="pod"'},
                "Summary": {'kind="summary"', 'kind="alert"'}}
    assert list(rows) == list(expected)
    for title, needles in expected.items():
        exprs = " ".join(t["expr"] for p in rows[title] for t in p.get("targets", []))
        assert all(needle in exprs for needle in needles), title
        kinds = {p["type"] for p in rows[title]}
        assert "logs" in kinds, f"{title} has no logs panel"
        if title != "Summary":
            assert {"timeseries", "bargauge"} <= kinds, title
    summary = " ".join(t["expr"] for p in rows["Summary"] for t in p.get("targets", []))
    assert 'source="gateway"' in summary and "gateway" in label_schema.sources


def test_logql_parser_sees_what_it_must() -> None:
    selector, used, defined, values = logql_labels(
        'topk(5, sum by (template, level) (count_over_time({source="gcs", prefix=~"$p"} |= "a" '
        '| label_format template=`{{ .x }}` | doc_id="1" [5m])))')
    assert selector == {"source", "prefix"}
    assert used == {"template", "level", "doc_id"}
    assert defined == {"template"}
    assert values == {"source": {"gcs"}}


# --- PromQL -------------------------------------------------------------------------------------

def test_promql_parses_with_promtool(boards, tmp_path) -> None:
    rules = []
    for name, board in boards.items():
        for index, expr in enumerate(expressions(board, "prometheus")):
            rules.append({"record": f"dashboard:{Path(name).stem.replace('-', '_')}:{index}",
                          "expr": substitute_variables(expr, board)})
    assert len(rules) >= 20
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([require_tool("promtool"), "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=PROMTOOL_TIMEOUT_SECONDS, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("board_name", "module"), [("shipper.json", "shipper.metrics"),
                                                   ("gateway.json", "gateway.metrics")])
def test_promql_names_only_exported_metrics_and_covers_them(boards, board_name: str, module: str) -> None:
    registry = project_registry(module)
    exported = exposition_names(registry)
    board = boards[board_name]
    queries = expressions(board, "prometheus") + [
        m["selector"] for q in variable_queries(board, "prometheus") if (m := _LABEL_VALUES.match(q))]
    used = set().union(*(promql_metric_names(q) for q in queries)) - PROMETHEUS_SYNTHETIC
    assert used, board_name
    assert used <= exported, f"{board_name} queries unknown metrics: {sorted(used - exported)}"
    families = {family.name for family in registry.collect()}
    covered = {family for family in families if any(n.startswith(family) for n in used)}
    assert covered == families, f"{board_name} shows nothing of {sorted(families - covered)}"


def test_log_monitor_has_no_promql(boards) -> None:
    assert expressions(boards["log-monitor.json"], "prometheus") == []


def test_promql_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, route) (rate(x_seconds_bucket{route=~"a|b"}[5m]))) '
            '/ on (job) group_left (instance) up{job="y"} - time()')
    assert promql_metric_names(expr) == {"x_seconds_bucket", "up"}
