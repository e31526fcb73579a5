"""Links that open a query in Grafana Explore, so an agent can hand a person the exact view."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson

NS_PER_MS = 1_000_000
PANE_ID = "gw"


def explore_url(grafana_url: str, datasource_uid: str, query: str, start_ns: int, end_ns: int) -> str:
    """Grafana Explore (the `panes` URL of Grafana 10 and later) on `query` over [start, end]."""
    pane = {
        PANE_ID: {
            "datasource": datasource_uid,
            "queries": [
                {
                    "refId": "A",
                    "expr": query,
                    "queryType": "range",
                    "editorMode": "code",
                    "datasource": {"type": "loki", "uid": datasource_uid},
                }
            ],
            "range": {"from": str(start_ns // NS_PER_MS), "to": str(-(-end_ns // NS_PER_MS))},
        }
    }
    params = {"schemaVersion": "1", "orgId": "1", "panes": orjson.dumps(pane).decode()}
    return f"{grafana_url.rstrip('/')}/explore?{urlencode(params)}"
