"""The ready-made filters of the per-source log endpoints and tools (source, level, substring,
labels, structured metadata) turned into a policy-scoped LogQL query, its window and limit.
Every value is escaped by gateway.services.logql."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from gateway.config import GatewaySettings
from gateway.security import Principal
from gateway.services.aggregate import DEFAULT_GROUPS
from gateway.services.errors import BadInput
from gateway.services.logql import ScannedQuery, build_log_query, parse_levels
from gateway.services.query_checks import check_limit, prepare_for, query_window

Direction = Literal["backward", "forward"]
AnswerFormat = Literal["json", "compact"]
SOURCES = {"gcs": "gcs", "firestore": "firestore", "pod": "pod", "pods": "pod", "gateway": "gateway"}
PRODUCTION_SOURCES = ("gcs", "firestore", "pod")
# per source: its `source` label value, its label filters and its structured-metadata filters
# (the parameters of the per-source routes; `service` is the label service_name)
SOURCE_FILTERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "gcs": ("gcs", ("bucket", "prefix", "service"), ("object",)),
    "firestore": ("firestore", ("collection", "service"), ("doc_id",)),
    "pods": ("pod", ("namespace", "pod", "container", "service"), ("node",)),
}


@dataclass(frozen=True)
class LogParams:
    """Query parameters every log endpoint shares."""

    since: str | None
    until: str | None
    hours: float | None
    level: list[str]
    q: str | None
    limit: int | None
    direction: Direction
    cursor: str | None
    max_bytes: int | None = None
    format: AnswerFormat = "json"
    aggregate: str | None = None
    groups: int = DEFAULT_GROUPS


@dataclass(frozen=True)
class FilteredQuery:
    scanned: ScannedQuery
    start_ns: int
    end_ns: int
    limit: int


def filtered_query(
    principal: Principal,
    settings: GatewaySettings,
    params: LogParams,
    labels: Mapping[str, str | list[str]],
    metadata: Mapping[str, str],
) -> FilteredQuery:
    """The policy-scoped query, window and limit of a per-source request (REST and MCP alike)."""
    levels = parse_levels(params.level)
    limit = check_limit(params.limit, settings.query_default_limit, settings.logs_max_limit)
    start_ns, end_ns = query_window(settings, params.since, params.until, params.hours)
    query = build_log_query(
        {k: v for k, v in labels.items() if v},
        levels=levels,
        contains=params.q,
        metadata={k: v for k, v in metadata.items() if v},
    )
    return FilteredQuery(prepare_for(principal, query, settings), start_ns, end_ns, limit)


def production_sources(given: Iterable[str]) -> list[str]:
    """The `source` label values of the production overview's `source=` parameters (comma lists
    allowed), in the order given, without repeats; all three shipped sources when none is given."""
    chosen: list[str] = []
    for item in given:
        for part in filter(None, (p.strip().lower() for p in item.split(","))):
            if part not in SOURCES:
                raise BadInput(
                    "invalid_source", f"unknown source {part!r}", "use gcs, firestore, pod or gateway"
                )
            if SOURCES[part] not in chosen:
                chosen.append(SOURCES[part])
    return chosen or list(PRODUCTION_SOURCES)


def source_filters(
    source: str, given: Mapping[str, str | None]
) -> tuple[dict[str, str | list[str]], dict[str, str]]:
    """The label and metadata filters of one source from the filters `given` (name to value, None
    or empty when absent); BadInput for a filter the source does not have."""
    source_label, label_filters, metadata_filters = SOURCE_FILTERS[source]
    foreign = sorted({name for name, value in given.items() if value} - {*label_filters, *metadata_filters})
    if foreign:
        raise BadInput(
            "invalid_filter",
            f"{', '.join(foreign)} do(es) not apply to source {source!r}",
            f"{source} takes: {', '.join(sorted({*label_filters, *metadata_filters, 'level', 'q'}))}",
        )
    labels: dict[str, str | list[str]] = {"source": source_label}
    for name in label_filters:
        labels["service_name" if name == "service" else name] = given.get(name) or ""
    return labels, {name: given.get(name) or "" for name in metadata_filters}
