"""The Loki-compatible read API (/loki/api/v1) against the real Loki: a GCS-scoped key stays
contained on every endpoint whatever selector it sends, a full-access key gets what Loki answers,
the requests Grafana's Loki data source makes parse as Loki's answers, and writes, deletes and
admin endpoints are refused."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from gateway.main import create_app
from gateway.services.redact import MASK, redact_fields
from tests.conftest import clear_of_a_minute_boundary
from tests.gateway.conftest import LOKI_TEST_URL, KeysFile, make_settings
from tests.gateway.loki_api_data import SM_SECRET, Keys, Planted, keys_for, leaks, plant
from tests.real_loki import RealLoki

API = "/loki/api/v1"
CATEGORIZE = {"X-Loki-Response-Encoding-Flags": "categorize-labels"}


@pytest.fixture(scope="module")
def planted(real_loki: RealLoki) -> Planted:
    return plant(real_loki)


@pytest.fixture(scope="module")
def keys(real_loki: RealLoki, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return keys_for(real_loki, tmp_path_factory.mktemp("loki-api-keys"))


@pytest.fixture
async def gateway(keys: Keys, client_for: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(keys.settings)) as client:
        yield client


def hostile_selectors(run: str) -> list[str]:
    """What a GCS-scoped client may send to see other sources."""
    return [
        f'{{run="{run}"}}',
        f'{{run="{run}", source=~".+"}}',
        f'{{run="{run}", source!="gcs"}}',
        f'{{run="{run}", source="firestore"}}',
        f'{{run="{run}", source=~"firestore|pod|gcs"}}',
        f"{{run=`{run}`, source=`pod`}}",
        f'{{__name__=~".+", run="{run}"}}',
        '{run=~".+"}',
        f'{{run="{run}"}} # {{source="pod"}}',
        f'{{run="{run}", source!~"gcs"}}',
    ]


async def get(client: httpx.AsyncClient, key: str, path: str, **params: Any) -> httpx.Response:
    return await client.get(API + path, params=params, headers={"Authorization": f"Bearer {key}"})


async def test_a_gcs_scoped_key_never_sees_another_source_on_any_endpoint(
    gateway: httpx.AsyncClient, keys: Keys, planted: Planted
) -> None:
    window = planted.window()
    answered: dict[str, int] = {}
    for selector in hostile_selectors(planted.run):
        calls = {
            "query_range": ("/query_range", {"query": selector, "limit": 1000, **window}),
            "query_range metric": (
                "/query_range",
                {
                    "query": f"sum by (service_name, source) (count_over_time({selector}[5m]))",
                    "step": "60",
                    **window,
                },
            ),
            "query": ("/query", {"query": f"sum by (source) (count_over_time({selector}[1h]))"}),
            "labels": ("/labels", {"query": selector, **window}),
            "label values": ("/label/service_name/values", {"query": selector, **window}),
            "series": ("/series", {"match[]": [selector, '{source="pod"}'], **window}),
            "series match": ("/series", {"match": selector, **window}),
            "stats": ("/index/stats", {"query": selector, **window}),
            "volume": ("/index/volume", {"query": selector, "targetLabels": "service_name", **window}),
            "volume_range": ("/index/volume_range", {"query": selector, "step": "60", **window}),
            "detected_labels": ("/detected_labels", {"query": selector, **window}),
            "detected_fields": ("/detected_fields", {"query": selector, **window}),
            "detected field values": ("/detected_field/doc_id/values", {"query": selector, **window}),
            "patterns": ("/patterns", {"query": selector, **window}),
        }
        for name, (path, params) in calls.items():
            response = await get(gateway, keys.gcs, path, **params)
            assert response.status_code in (200, 400), (name, selector, response.text)
            assert not leaks(response.text), (name, selector, response.text[:500])
            answered[name] = answered.get(name, 0) + (response.status_code == 200)
    assert all(answered.values()), answered  # each endpoint answered, not only refused

    # without a selector, the policy is the selector
    for path in ("/labels", "/label/source/values", "/label/service_name/values", "/series"):
        response = await get(gateway, keys.gcs, path, **window)
        assert response.status_code == 200 and not leaks(response.text), (path, response.text)
    values = await get(gateway, keys.gcs, "/label/source/values", **window)
    assert values.json()["data"] == ["gcs"]


async def test_the_scoped_key_reads_its_own_streams_as_loki_returns_them(
    gateway: httpx.AsyncClient, keys: Keys, planted: Planted, real_loki: RealLoki
) -> None:
    selector = f'{{run="{planted.run}"}}'
    through = await get(gateway, keys.gcs, "/query_range", query=selector, limit=1000, **planted.window())
    direct = real_loki.query_range(
        f'{{run="{planted.run}", source="gcs"}}',
        start_ns=planted.start_ns,
        end_ns=planted.end_ns,
        limit=1000,
        direction="backward",
    )
    assert through.status_code == 200
    ours = through.json()["data"]
    assert ours["resultType"] == "streams" and ours["result"]
    assert {json.dumps(s["stream"], sort_keys=True) for s in ours["result"]} == {
        json.dumps(redact_fields(s["stream"]), sort_keys=True) for s in direct["result"]
    }
    lines = [v[1] for s in ours["result"] for v in s["values"]]
    assert len(lines) == sum(len(s["values"]) for s in direct["result"])
    assert f"gcs login password={MASK} ok" in lines and "hunter2" not in through.text
    volume = await get(gateway, keys.gcs, "/index/volume", query=selector, **planted.window())
    loki_volume = real_loki.http.get(
        f"{API}/index/volume", params={"query": f'{{run="{planted.run}", source="gcs"}}', **planted.window()}
    ).json()
    assert volume.json()["data"]["result"] == loki_volume["data"]["result"]
    assert len(loki_volume["data"]["result"]) == 1  # one run label value, its bytes GCS's only


async def test_a_full_access_key_gets_what_loki_answers(
    gateway: httpx.AsyncClient, keys: Keys, planted: Planted, real_loki: RealLoki
) -> None:
    selector = f'{{run="{planted.run}"}} != "password"'
    params = {"query": selector, "limit": 1000, "direction": "forward", **planted.window()}
    through = await get(gateway, keys.full, "/query_range", **params)
    direct = real_loki.http.get(f"{API}/query_range", params=params).json()
    assert through.status_code == 200
    assert through.json()["data"]["result"] == direct["data"]["result"]
    for path, extra in (
        ("/labels", {}),
        ("/label", {}),  # Loki's older spelling of /labels
        ("/label/source/values", {}),
        ("/series", {"match[]": f'{{run="{planted.run}"}}'}),
    ):
        ours = await get(gateway, keys.full, path, **extra, **planted.window())
        theirs = real_loki.http.get(API + path, params={**extra, **planted.window()}).json()
        assert ours.status_code == 200 and canonical(ours.json()["data"]) == canonical(theirs["data"])
    assert (await get(gateway, keys.full, "/label/source/values", **planted.window())).json()["data"] == [
        "firestore",
        "gcs",
        "pod",
    ]


async def test_structured_metadata_and_labels_are_redacted_in_both_encodings(
    gateway: httpx.AsyncClient, keys: Keys, planted: Planted
) -> None:
    params = {"query": f'{{run="{planted.run}"}} |= "password"', "limit": 10, **planted.window()}
    categorized = await gateway.get(
        f"{API}/query_range", params=params, headers={"x-api-key": keys.gcs, **CATEGORIZE}
    )
    data = categorized.json()["data"]
    assert data["encodingFlags"] == ["categorize-labels"]
    [[_, line, extra]] = [v for s in data["result"] for v in s["values"]]
    assert line == f"gcs login password={MASK} ok"
    assert extra["structuredMetadata"] == {"object": "trades/x.json", "api_key": MASK}
    flat = await get(gateway, keys.gcs, "/query_range", **params)  # Loki merges metadata into labels
    [stream] = flat.json()["data"]["result"]
    assert stream["stream"]["api_key"] == MASK and stream["stream"]["object"] == "trades/x.json"
    values = await get(gateway, keys.gcs, "/detected_field/api_key/values", **params)
    assert values.json()["values"] == [MASK]
    for response in (categorized, flat, values):
        assert SM_SECRET not in response.text and "hunter2" not in response.text


def canonical(items: list[Any]) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def grafana_requests(run: str, window: dict[str, str]) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """What Grafana's Loki data source (12.x) and Logs Drilldown ask: "Save & test", Explore's
    logs, logs volume and label browser, Drilldown's service list, labels, fields and patterns."""
    service = "{service_name=`trades`}"
    return [
        ("/status/buildinfo", {}, {}),
        ("/labels", window, {}),  # "Save & test"
        ("/query", {"query": "vector(1)+vector(1)", "time": window["end"]}, {}),  # older health check
        (
            "/query_range",
            {
                "query": f'{{run="{run}"}}',
                "direction": "backward",
                "limit": "1000",
                "step": "2000ms",
                **window,
            },
            {**CATEGORIZE, "X-Query-Tags": "Source=grafana"},
        ),
        (
            "/query_range",
            {
                "query": f'sum by (level, detected_level) (count_over_time({{run="{run}"}} '
                f"| drop __error__[1m]))",
                "direction": "backward",
                "step": "60000ms",
                **window,
            },
            {"X-Query-Tags": "Source=logvolhist"},
        ),
        (
            "/query",
            {
                "query": f'count_over_time({{run="{run}"}}[5m])',
                "direction": "backward",
                "time": window["end"],
            },
            {},
        ),
        ("/label/service_name/values", window, {}),
        ("/label/level/values", {"query": f'{{run="{run}"}}', **window}, {}),
        ("/series", {"match[]": f'{{run="{run}"}}', **window}, {}),
        ("/index/stats", {"query": f'{{run="{run}"}}', **window}, {}),
        (
            "/index/volume",
            {
                "query": '{service_name=~".+"}',
                "limit": "5000",
                "targetLabels": "service_name",
                "aggregateBy": "labels",
                **window,
            },
            {},
        ),
        (
            "/index/volume_range",
            {
                "query": service,
                "step": "60",
                "targetLabels": "detected_level",
                "aggregateBy": "labels",
                **window,
            },
            {},
        ),
        ("/detected_labels", {"query": service, **window}, {}),
        (
            "/detected_fields",
            {
                "query": f"{service} | json | logfmt | drop __error__, __error_details__",
                "limit": "1000",
                **window,
            },
            {},
        ),
        ("/detected_field/qty/values", {"query": service, **window}, {}),
        ("/patterns", {"query": service, "step": "60s", **window}, {}),
        ("/drilldown-limits", {}, {}),
        ("/format_query", {"query": f'{{run="{run}"}}|="x"'}, {}),
    ]


def check_loki_shape(path: str, body: Any, headers: dict[str, str]) -> None:
    """Loki's documented answer formats, as Grafana's data source decodes them."""
    if path in ("/labels",) or path.startswith("/label/"):
        assert body["status"] == "success" and all(isinstance(v, str) for v in body.get("data", []))
    elif path in ("/query", "/query_range", "/index/volume", "/index/volume_range"):
        data = body["data"]
        assert body["status"] == "success" and data["resultType"] in ("streams", "vector", "matrix")
        assert isinstance(data["result"], list)
        if data["resultType"] == "streams":
            for stream in data["result"]:
                assert all(isinstance(v, str) for v in stream["stream"].values())
                for value in stream["values"]:
                    assert int(value[0]) > 0 and isinstance(value[1], str)
                    if headers.get("X-Loki-Response-Encoding-Flags"):
                        assert isinstance(value[2], dict)
            if headers.get("X-Loki-Response-Encoding-Flags"):
                assert data["encodingFlags"] == ["categorize-labels"]
        else:
            for series in data["result"]:
                assert isinstance(series["metric"], dict) and ("value" in series or "values" in series)
    elif path == "/series":
        assert body["status"] == "success" and all(isinstance(s, dict) for s in body["data"])
    elif path == "/index/stats":
        assert set(body) == {"streams", "chunks", "bytes", "entries"}
    elif path == "/patterns":
        assert body["status"] == "success" and isinstance(body["data"], list)
    elif path == "/detected_fields":
        assert all({"label", "type", "cardinality"} <= set(f) for f in body["fields"])
    elif path.startswith("/detected_field/"):
        assert isinstance(body["values"], list)
    elif path == "/detected_labels":
        assert all({"label", "cardinality"} <= set(d) for d in body["detectedLabels"])
    elif path == "/status/buildinfo":
        assert "version" in body
    elif path == "/drilldown-limits":
        assert "limits" in body
    elif path == "/format_query":
        assert body["status"] == "success" and isinstance(body["data"], str)
    else:
        raise AssertionError(f"no shape check for {path}")


@pytest.mark.parametrize("who", ["full", "gcs"])
async def test_grafana_data_source_requests_get_lokis_answers(
    gateway: httpx.AsyncClient, keys: Keys, planted: Planted, who: str
) -> None:
    key = keys.full if who == "full" else keys.gcs
    for path, params, headers in grafana_requests(planted.run, planted.window()):
        # Grafana sends the key as a custom header (x-api-key), the client's tenant is ignored
        response = await gateway.get(
            API + path, params=params, headers={"x-api-key": key, "X-Scope-OrgID": "other-team", **headers}
        )
        assert response.status_code == 200, (path, response.text)
        check_loki_shape(path, response.json(), headers)
        if who == "gcs" and path != "/drilldown-limits":
            assert not leaks(response.text), (path, response.text[:400])
    drilldown = await get(
        gateway,
        key,
        "/index/volume",
        query='{service_name=~".+"}',
        targetLabels="service_name",
        **planted.window(),
    )
    services = {s["metric"].get("service_name") for s in drilldown.json()["data"]["result"]}
    assert "trades" in services
    assert ("fs-hidden-svc" in services) is (who == "full")


async def test_wrong_missing_or_unscoped_keys_are_refused(gateway: httpx.AsyncClient, keys: Keys) -> None:
    wrong = await gateway.get(f"{API}/labels", headers={"Authorization": "Bearer gwk_not-a-real-key-at-all"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert "not valid" in wrong.json()["message"]  # the field Grafana's data source displays
    missing = await gateway.get(f"{API}/query_range", params={"query": '{source="gcs"}'})
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    unscoped = await get(gateway, keys.no_logs, "/labels")
    assert unscoped.status_code == 403 and unscoped.json()["error"]["code"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/push", 403, "loki_endpoint_refused"),
        ("POST", "/delete", 403, "loki_endpoint_refused"),
        ("DELETE", "/delete", 403, "loki_endpoint_refused"),
        ("GET", "/delete", 403, "loki_endpoint_refused"),
        ("GET", "/rules", 403, "loki_endpoint_refused"),
        ("POST", "/rules/fake", 403, "loki_endpoint_refused"),
        ("GET", "/cache/generation_numbers", 403, "loki_endpoint_refused"),
        ("POST", "/query_range", 405, "method_not_allowed"),
        ("GET", "/tail", 400, "websocket_required"),
        ("GET", "/no_such_thing", 404, "not_found"),
    ],
)
async def test_writes_deletes_and_admin_are_refused(
    gateway: httpx.AsyncClient,
    keys: Keys,
    planted: Planted,
    real_loki: RealLoki,
    method: str,
    path: str,
    status: int,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {"streams": [{"stream": {"source": "gcs", "run": planted.run}, "values": [["1", "injected"]]}]}
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        response = await gateway.request(method, API + path, json=body, headers={"x-api-key": keys.full})
    assert response.status_code == status and response.json()["error"]["code"] == code, response.text
    refusals = [json.loads(r.getMessage()) for r in caplog.records if "loki_refused" in r.getMessage()]
    if status == 403:  # who tried to write or administer is on record
        assert refusals == [
            {
                "event": "loki_refused",
                "key": "full",
                "method": method,
                "endpoint": path.split("/")[1],
                "kind": "audit",
            }
        ]
    assert (await gateway.request(method, API + path, json=body)).status_code == 401


async def test_guardrails_apply_as_on_the_logql_proxy(
    gateway: httpx.AsyncClient, keys: Keys, planted: Planted
) -> None:
    too_long = await get(gateway, keys.full, "/query_range", query=f'{{run="{planted.run}"}}', since="48h")
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "range_too_long"
    too_many = await get(gateway, keys.full, "/query_range", query=f'{{run="{planted.run}"}}', limit=10**6)
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "limit_too_large"
    broad = await get(gateway, keys.full, "/query_range", query='{source=~".+"}')
    assert broad.status_code == 400 and broad.json()["error"]["code"] == "query_too_broad"
    bad = await get(gateway, keys.full, "/query_range", query=f'{{run="{planted.run}"}} |= ')
    assert bad.status_code == 400 and "parse error" in bad.json()["message"]  # Loki's own words


async def test_the_rate_limit_holds_for_loki_clients(
    real_loki: RealLoki, tmp_path: Path, client_for: Callable[..., Any]
) -> None:
    keys = keys_for(real_loki, tmp_path, rate_limit="2/minute")
    clear_of_a_minute_boundary()
    async with client_for(create_app(keys.settings)) as client:
        codes = [(await get(client, keys.full, "/labels")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = await get(client, keys.full, "/labels")
        assert int(limited.headers["Retry-After"]) >= 1


async def test_only_the_keys_tenant_and_no_client_header_reaches_loki(
    keys_file: KeysFile, client_for: Callable[..., Any]
) -> None:
    """Loki with auth disabled ignores tenants, so the headers that reach it are recorded here."""
    key = keys_file.add("team-a", ["logs:read"], tenant="team-a", label_policy='{source="gcs"}')
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path))
    answer = {"status": "success", "data": ["gcs"]}
    with respx.mock(base_url=LOKI_TEST_URL, assert_all_called=False) as loki:
        route = loki.get(f"{API}/label/source/values").respond(json=answer)
        async with client_for(app) as client:
            response = await client.get(
                f"{API}/label/source/values",
                headers={
                    "x-api-key": key,
                    "X-Scope-OrgID": "team-b",
                    "X-Prom-Label-Policy": "x",
                    "Cookie": "c=1",
                },
            )
    assert response.status_code == 200
    sent = route.calls.last.request
    assert sent.headers["X-Scope-OrgID"] == "team-a"
    assert "x-prom-label-policy" not in sent.headers and "cookie" not in sent.headers
    assert "x-api-key" not in sent.headers and "authorization" not in sent.headers
    assert sent.url.params["query"] == '{source="gcs"}'
