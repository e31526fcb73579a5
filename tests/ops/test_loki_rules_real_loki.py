"""The Loki ruler's rules (ops-stack/loki/rules/) on the real Loki (session fixture `real_loki`):
its ruler loads every group and rule of the files; every rule's expression runs through
query_range (200) and, on planted lines, shows exactly the series that should alert, with the
planted value, and not the quiet ones below its threshold."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.ops.conftest import LabelSchema
from tests.real_loki import LOKI_RULES, RealLoki, run_id

SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS
FLUSH_WAIT_SECONDS = 30
SPIKE_ERRORS = 60  # over LogErrorSpike's 50 in 5 minutes
SPIKE_INFOS = 10  # 60 of 70 lines are errors: over LogErrorRatioHigh's fifth, over its 20 lines
QUIET_ERRORS, QUIET_INFOS = 10, 90  # under both: 10 errors, a tenth of the lines at every step
CRASH_LINES = 25  # over PodCrashLoopRepeated's 20 in 30 minutes
STOPPED_LINES = 30
CRASH_TEXTS = ("panic: runtime error: index out of range [{n}]", "Traceback (most recent call last):",
               "fatal error: concurrent map writes", "OOMKilled")


def rule_groups() -> list[dict[str, Any]]:
    groups = []
    for path in sorted(LOKI_RULES.glob("*/*.y*ml")):
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return groups


def rules() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, rule) for every alert rule."""
    return [(group, rule) for group in rule_groups() for rule in group["rules"]]


def duration_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(text[:-1]) * units[text[-1]]


@dataclass(frozen=True)
class Planted:
    run: str
    now_ns: int  # every rule but LogSourceStoppedShipping is evaluated here
    stopped_at_ns: int  # where the firestore lines of LogSourceStoppedShipping end

    def labels(self, source: str, level: str, *, quiet: bool = False) -> dict[str, str]:
        name = f"{self.run}q" if quiet else self.run
        common = {"source": source, "service_name": name, "level": level}
        if source == "gcs":
            return {**common, "bucket": "demo-logs", "prefix": name}
        if source == "firestore":
            return {**common, "collection": name}
        return {**common, "namespace": self.run, "pod": f"{name}-0", "container": "runner"}


def lines_at(start_ns: int, count: int, text: Callable[[int], str]) -> list[list[str]]:
    return [[str(start_ns + i * 100_000_000), text(i)] for i in range(count)]


def quiet_lines(start_ns: int, level: str) -> list[list[str]]:
    """The quiet series' lines, one every 100 ms: each tenth is an error and comes last in its ten,
    so a window that catches only the start of the burst still sees at most a tenth of errors."""
    word = "late" if level == "error" else "filled"
    lines = lines_at(start_ns, QUIET_ERRORS + QUIET_INFOS, lambda i: f"order {i} {word}")
    return [line for i, line in enumerate(lines) if (i % 10 == 9) == (level == "error")]


@pytest.fixture(scope="module")
def planted(real_loki: RealLoki, label_schema: LabelSchema) -> Planted:
    run = run_id("rule")
    now_ns = time.time_ns()
    recent = now_ns - 90 * SECOND_NS
    # LogSourceStoppedShipping looks at one source's last 90 minutes; in the session Loki "now" is
    # busy with every other test's lines, so its case lives days back at an odd hour (3 d 17 h plus
    # up to 2 h), where no other test plants firestore lines.
    stopped_at = now_ns - (3 * 24 + 17) * 60 * MINUTE_NS - random.randrange(120) * MINUTE_NS
    plant = Planted(run, now_ns, stopped_at)
    streams = [
        (plant.labels("gcs", "error"), lines_at(recent, SPIKE_ERRORS, lambda i: f"order {i} rejected")),
        (plant.labels("gcs", "info"), lines_at(recent, SPIKE_INFOS, lambda i: f"order {i} filled")),
        (plant.labels("gcs", "error", quiet=True), quiet_lines(recent, "error")),
        (plant.labels("gcs", "info", quiet=True), quiet_lines(recent, "info")),
        (plant.labels("pod", "error"),
         lines_at(recent, CRASH_LINES, lambda i: CRASH_TEXTS[i % len(CRASH_TEXTS)].format(n=i))),
        (plant.labels("pod", "info", quiet=True),
         lines_at(recent, CRASH_LINES, lambda i: f"connection reset by peer ({i})")),
        (plant.labels("firestore", "info"),
         lines_at(stopped_at - STOPPED_LINES * SECOND_NS, STOPPED_LINES, lambda i: f"doc {i} updated")),
    ]
    for labels, _ in streams:
        assert set(labels) <= label_schema.stream_labels, labels
    body = {"streams": [{"stream": labels, "values": values} for labels, values in streams]}
    response = real_loki.push_raw(body)
    assert response.status_code == 204, response.text
    real_loki.flush()  # the days-old lines are served from the store only
    selector = f'{{source="firestore", collection="{run}"}}'
    deadline = time.monotonic() + FLUSH_WAIT_SECONDS
    window = {"start_ns": stopped_at - 10 * MINUTE_NS, "end_ns": stopped_at + MINUTE_NS}
    while real_loki.count(selector, **window) < STOPPED_LINES:
        assert time.monotonic() < deadline, "the flushed firestore lines never became visible"
        time.sleep(0.5)
    return plant


def expected_alerts(plant: Planted) -> dict[str, tuple[int, dict[str, str], float]]:
    """Alert -> (evaluation time, labels of this run's series, its value)."""
    run = plant.run
    return {
        "LogErrorSpike": (plant.now_ns, {"source": "gcs", "service_name": run}, SPIKE_ERRORS),
        "LogErrorRatioHigh": (plant.now_ns, {"source": "gcs", "service_name": run},
                              SPIKE_ERRORS / (SPIKE_ERRORS + SPIKE_INFOS)),
        "PodCrashPatterns": (plant.now_ns, {"namespace": run, "pod": f"{run}-0", "service_name": run},
                             CRASH_LINES),
        "PodCrashLoopRepeated": (plant.now_ns, {"namespace": run, "service_name": run}, CRASH_LINES),
        # lines up to T, evaluated at T + 45 min: some in [T-45m, T+15m), none in [T+15m, T+45m)
        "LogSourceStoppedShipping": (plant.stopped_at_ns + 45 * MINUTE_NS, {"source": "firestore"},
                                     STOPPED_LINES),
    }


def query_range(loki: RealLoki, expr: str, at_ns: int, step_seconds: int) -> list[dict[str, Any]]:
    response = loki.http.get("/loki/api/v1/query_range", params={
        "query": expr, "start": at_ns - 10 * step_seconds * SECOND_NS, "end": at_ns,
        "step": f"{step_seconds}s",
    })
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["resultType"] == "matrix"
    result: list[dict[str, Any]] = data["result"]
    return result


def value_at(series: Mapping[str, Any], at_ns: int) -> float | None:
    for timestamp, value in series["values"]:
        if round(float(timestamp)) * SECOND_NS == at_ns:
            return float(value)
    return None


def test_every_rule_has_a_planted_case() -> None:
    plant = Planted("r", 0, 0)
    assert {rule["alert"] for _, rule in rules()} == set(expected_alerts(plant))


@pytest.mark.parametrize(("group", "rule"), rules(), ids=[rule["alert"] for _, rule in rules()])
def test_rule_runs_on_loki_and_alerts_on_the_planted_lines(
        real_loki: RealLoki, planted: Planted, group: dict[str, Any], rule: dict[str, Any]) -> None:
    at_ns, labels, value = expected_alerts(planted)[rule["alert"]]
    step = duration_seconds(group["interval"])
    at_ns = at_ns // (step * SECOND_NS) * step * SECOND_NS  # Loki aligns query_range to the step
    result = query_range(real_loki, rule["expr"], at_ns, step)
    ours = [s for s in result if labels.items() <= s["metric"].items()]
    assert len(ours) == 1, f"{rule['alert']}: no single series {labels} in {[s['metric'] for s in result]}"
    assert set(ours[0]["metric"]) == set(labels), ours[0]["metric"]  # the rule's `by` labels, no more
    shown = value_at(ours[0], at_ns)
    if rule["alert"] == "LogSourceStoppedShipping":  # other tests' firestore lines may add to the count
        assert shown is not None and shown >= value, ours[0]
    else:
        assert shown == pytest.approx(value), ours[0]
    quiet = [s["metric"] for s in result if s["metric"].get("service_name") == f"{planted.run}q"]
    assert not quiet, f"{rule['alert']} alerts on the quiet series under its threshold: {quiet}"


def test_the_ruler_loads_every_group_and_rule(real_loki: RealLoki) -> None:
    response = real_loki.http.get("/prometheus/api/v1/rules")
    assert response.status_code == 200, response.text
    loaded = {group["name"]: group for group in response.json()["data"]["groups"]}
    for group in rule_groups():
        assert group["name"] in loaded, f"the ruler did not load {group['name']}"
        assert loaded[group["name"]]["interval"] == duration_seconds(group["interval"])
        ruled = {rule["name"]: rule for rule in loaded[group["name"]]["rules"]}
        assert set(ruled) == {rule["alert"] for rule in group["rules"]}
        for name, rule in ruled.items():
            assert rule["health"] != "err" and not rule.get("lastError"), (name, rule.get("lastError"))
