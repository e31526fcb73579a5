"""With GRAFANA_URL set, log answers carry a link opening the same query and range in Explore."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from gateway.main import create_app
from tests.gateway.conftest import KeysFile, make_settings, running_client
from tests.real_loki import RealLoki, run_id

NS = 1_000_000_000


async def test_log_answers_link_to_grafana_explore(real_loki: RealLoki, tmp_path: Path) -> None:
    rid = run_id("grafana")
    base = time.time_ns() - 5 * 60 * NS
    real_loki.push([({"source": "gcs", "level": "info", "run_id": rid}, [(base, "hello grafana")])])
    keys_file = KeysFile(tmp_path / "keys.yaml")
    key = keys_file.add("gcs", ["logs:read"], label_policy='{source="gcs"}')
    since, until = base - 60 * NS, base + 60 * NS
    params = {"query": f'{{run_id="{rid}"}}', "since": str(since), "until": str(until), "max_bytes": 2048}
    plain_app = create_app(make_settings(gateway_api_keys_file=keys_file.path, loki_url=real_loki.url))
    app = create_app(
        make_settings(
            gateway_api_keys_file=keys_file.path,
            loki_url=real_loki.url,
            grafana_url="http://grafana.test:3000/",
        )
    )
    async with running_client(app) as client:
        answer = await client.get(
            "/api/monitoring/logs/query_range", params=params, headers={"x-api-key": key}
        )
        pods = await client.get("/logs/pods", params={"since": str(since)}, headers={"x-api-key": key})
    async with running_client(plain_app) as client:
        plain = await client.get(
            "/api/monitoring/logs/query_range", params=params, headers={"x-api-key": key}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [e[1] for s in body["streams"] for e in s["entries"]] == ["hello grafana"]
    assert len(answer.content) <= 2048 and body["stats"]["answer_bytes"] == len(answer.content)
    link = urlsplit(body["grafana_url"])
    assert (link.scheme, link.netloc, link.path) == ("http", "grafana.test:3000", "/explore")
    pane = json.loads(parse_qs(link.query)["panes"][0])["gw"]
    assert pane["queries"][0]["expr"] == f'{{run_id="{rid}", source="gcs"}}'  # what the key sees
    assert pane["queries"][0]["datasource"] == {"type": "loki", "uid": "loki"}
    assert pane["range"] == {
        "from": str(since // 1_000_000),
        "to": str(-(-until // 1_000_000)),
    }  # ms, covering
    assert "grafana_url" in pods.json()  # empty answers link too
    assert "grafana_url" not in plain.json()
