"""Alert rules: Prometheus rules checked and unit-tested with Debian's promtool; Loki ruler rules
checked structurally here (parsed with the gateway's LogQL scanner, DESIGN.md labels only) and run
by the real Loki in test_loki_rules_real_loki.py and test_loki_ruler_e2e.py; the Alertmanager
config checked with amtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from gateway.metrics import REGISTRY as GATEWAY_REGISTRY
from gateway.services.logql import scan_query
from shipper.metrics import REGISTRY as SHIPPER_REGISTRY

pytestmark = pytest.mark.tool

ROOT = Path(__file__).resolve().parents[2]
PROM_RULES = ROOT / "ops-stack" / "prometheus" / "rules"
LOKI_RULES = ROOT / "ops-stack" / "loki" / "rules"
ALERTMANAGER_CONFIG = ROOT / "ops-stack" / "alertmanager" / "alertmanager.yml"
TOOL_TIMEOUT_SECONDS = 60
# DESIGN.md, "Labels": the stream labels of every source
STREAM_LABELS = {
    "source", "service_name", "bucket", "prefix", "level", "collection", "namespace", "pod",
    "container", "kind",
}
SEVERITIES = {"warning", "critical"}
PROMQL_KEYWORDS = {
    "sum", "rate", "increase", "max", "min", "avg", "by", "without", "and", "or", "unless", "time",
    "histogram_quantile", "count", "on", "ignoring", "offset", "bool", "le", "up",
}


def prometheus_rule_files() -> list[Path]:
    return sorted(p for p in PROM_RULES.glob("*.y*ml"))


def prometheus_test_files() -> list[Path]:
    return sorted((PROM_RULES / "tests").glob("*.y*ml"))


def loki_rule_files() -> list[Path]:
    return sorted(LOKI_RULES.glob("*/*.y*ml"))


def rules_of(path: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and document.get("groups"), f"{path}: no groups"
    rules = []
    for group in document["groups"]:
        assert group.get("name"), f"{path}: a group without a name"
        assert group.get("rules"), f"{path}: group {group['name']} has no rules"
        rules.extend(group["rules"])
    return rules


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS, check=False)


def test_rule_files_exist() -> None:
    assert {p.name for p in prometheus_rule_files()} >= {"shipper.yml", "gateway.yml"}
    assert prometheus_test_files()
    assert loki_rule_files(), "Loki rules live in ops-stack/loki/rules/<tenant>/<file>.yaml"
    assert all(p.parent.name == "fake" for p in loki_rule_files())


def test_promtool_check_rules() -> None:
    result = run(promtool(), "check", "rules", *map(str, prometheus_rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests() -> None:
    result = run(promtool(), "test", "rules", *map(str, prometheus_test_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_every_prometheus_alert_is_unit_tested_and_routable() -> None:
    tested = set()
    for path in prometheus_test_files():
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    for path in prometheus_rule_files():
        for rule in rules_of(path):
            assert rule["alert"] in tested, f"{rule['alert']} has no promtool test where it fires"
            assert rule["labels"]["severity"] in SEVERITIES
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def _exposed_names(metric: Metric) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {metric.name + suffix for suffix in suffixes.get(metric.type, ("",))}


def test_prometheus_rules_only_use_metrics_that_exist() -> None:
    known = {"up"}
    for registry in (SHIPPER_REGISTRY, GATEWAY_REGISTRY):
        for metric in registry.collect():
            known |= _exposed_names(metric)
    for path in prometheus_rule_files():
        for rule in rules_of(path):
            without_strings = re.sub(r'"[^"]*"', '""', rule["expr"])
            without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_strings)
            names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[|\)|\s|$)", without_groupings))
            metrics = {n for n in names if n.startswith(("shipper_", "gateway_")) or n == "up"}
            assert metrics, f"{rule['alert']}: no shipper_/gateway_ metric in {rule['expr']!r}"
            assert metrics <= known, f"{rule['alert']}: unknown metrics {sorted(metrics - known)}"


@pytest.mark.parametrize("path", loki_rule_files(), ids=lambda p: p.name)
def test_loki_rules_are_well_formed_and_use_design_labels_only(path: Path) -> None:
    rules = rules_of(path)
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert set(rule["labels"]) <= {"severity"} | STREAM_LABELS, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        scanned = scan_query(rule["expr"])  # raises on a malformed selector or string
        for selector in scanned.selectors:
            used = {matcher.name for matcher in selector.matchers}
            assert used and used <= STREAM_LABELS, f"{rule['alert']}: selector labels {used}"
        for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", "".join(scanned.code)):
            grouped = {label.strip() for label in grouping.split(",") if label.strip()}
            assert grouped <= STREAM_LABELS, f"{rule['alert']}: grouped by {grouped}"
        for label in re.findall(r"\$labels\.(\w+)", str(rule["annotations"])):
            assert label in STREAM_LABELS, f"{rule['alert']}: annotation uses {label}"
        assert re.search(r"(count|rate|bytes)_over_time|absent_over_time", rule["expr"]), (
            f"{rule['alert']}: a ruler alert needs a metric query"
        )


def test_alertmanager_config_is_valid() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (Debian package `prometheus-alertmanager`)")
    result = run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
