"""Loki configs: the single binary of the compose stack (loki.yaml) and the simple-scalable GCS one
(loki-gcs.yaml). The real Loki binary checks that both load (`-verify-config`); the rest checks
the contract with the shipper, the gateway and the compose file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.config import GatewaySettings
from shipper.config import ShipperSettings
from tests.ops.conftest import REPO, RenderedCompose, load_yaml
from tests.real_loki import find_loki_binary

LOKI = REPO / "ops-stack/loki/loki.yaml"
LOKI_GCS = REPO / "ops-stack/loki/loki-gcs.yaml"
SINGLE_TENANT = "fake"  # the tenant Loki uses when auth_enabled is false
# Loki's sizes (flagext.ByteSize, bytefmt): K/KB, M/MB, G/GB are powers of 1024; "KiB" is refused.
_SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>[KMGT]B?|B)?$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "M": 2**20, "MB": 2**20, "G": 2**30, "GB": 2**30}
_DURATION = re.compile(r"(\d+)([hms])")


def byte_size(value: str | int) -> int:
    """Loki's byte sizes (KB = 1024; the binary refuses KiB, see test_configs_load_in_the_real_loki)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value.strip())
    assert match, f"not a byte size: {value}"
    return int(float(match["number"]) * _UNITS[(match["unit"] or "").upper()])


def hours(value: str) -> float:
    factor = {"h": 1.0, "m": 1 / 60, "s": 1 / 3600}
    parts = _DURATION.findall(value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value}"
    return sum(int(n) * factor[u] for n, u in parts)


def defaults(settings_class: type) -> SimpleNamespace:
    """A settings class's defaults, unaffected by the environment of the test run."""
    return SimpleNamespace(**{name: field.default for name, field in settings_class.model_fields.items()})


@pytest.fixture(scope="module")
def loki() -> dict[str, Any]:
    return load_yaml(LOKI)


@pytest.fixture(scope="module")
def loki_gcs() -> dict[str, Any]:
    return load_yaml(LOKI_GCS)


@pytest.mark.parametrize(("path", "object_store"), [(LOKI, "filesystem"), (LOKI_GCS, "gcs")])
def test_schema_is_tsdb_v13_with_structured_metadata(path, object_store: str) -> None:
    config = load_yaml(path)
    newest = max(config["schema_config"]["configs"], key=lambda period: str(period["from"]))
    assert newest["store"] == "tsdb"
    assert newest["schema"] == "v13"
    assert newest["object_store"] == object_store
    assert newest["index"]["period"] == "24h"
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["pattern_ingester"]["enabled"] is True
    assert config["compactor"]["delete_request_store"] == object_store
    assert config["ruler"]["enable_api"] is True


def test_single_binary_uses_the_filesystem(loki) -> None:
    filesystem = loki["common"]["storage"]["filesystem"]
    assert filesystem["chunks_directory"].startswith(loki["common"]["path_prefix"])
    assert loki["common"]["replication_factor"] == 1
    assert loki["common"]["ring"]["kvstore"]["store"] == "inmemory"
    assert "target" not in loki or loki["target"] == "all"


def test_internal_traffic_is_loopback_only(loki) -> None:
    assert loki["server"]["grpc_listen_address"] == "127.0.0.1"
    assert loki["common"]["instance_addr"] == "127.0.0.1"
    assert "memberlist" not in loki


def test_unauthenticated_loki_is_published_on_loopback_only(loki, rendered_compose: RenderedCompose) -> None:
    assert loki["auth_enabled"] is False
    ports = rendered_compose.config["services"]["loki"]["ports"]
    assert ports and all(str(port).startswith("127.0.0.1:") for port in ports)


def test_ruler_reads_the_mounted_rules_and_notifies_alertmanager(loki, rendered_compose) -> None:
    ruler = loki["ruler"]
    assert ruler["storage"]["type"] == "local"
    mounts = rendered_compose.mounts("loki")
    rules = Path(mounts[ruler["storage"]["local"]["directory"].rstrip("/")])
    assert rules == REPO / "ops-stack/loki/rules"
    if rules.is_dir():  # filled by the alerting work: rule files sit in the tenant's folder
        assert list((rules / SINGLE_TENANT).glob("*.y*ml")), f"no rules for tenant {SINGLE_TENANT}"
        assert not list(rules.glob("*.y*ml")), "rule files outside a tenant folder are not loaded"
    target = urlsplit(ruler["alertmanager_url"])
    assert target.hostname in rendered_compose.config["services"]
    assert f"{target.hostname}:{target.port}" == "alertmanager:9093"
    assert mounts["/etc/loki/loki.yaml"].endswith("ops-stack/loki/loki.yaml")


@pytest.mark.parametrize("path", [LOKI, LOKI_GCS])
def test_limits_accept_what_the_shipper_sends_and_the_gateway_asks(path) -> None:
    limits = load_yaml(path)["limits_config"]
    shipper = defaults(ShipperSettings)
    gateway = defaults(GatewaySettings)
    assert byte_size(limits["max_line_size"]) >= shipper.max_line_bytes
    assert hours(limits["reject_old_samples_max_age"]) >= shipper.max_age_hours
    # the gateway asks for limit + 1 plus the entries a page cursor skips
    assert limits["max_entries_limit_per_query"] >= 2 * gateway.query_max_limit
    assert hours(limits["max_query_length"]) >= gateway.query_max_range_hours
    # the batch the shipper sends in one push fits into the burst Loki allows
    assert byte_size(f"{limits['ingestion_burst_size_mb']}MB") >= shipper.batch_max_bytes
    assert limits["discover_log_levels"] is False, "the shipper sets `level` itself"


def test_scalable_config_stores_everything_in_gcs(loki_gcs) -> None:
    assert loki_gcs["common"]["storage"]["gcs"]["bucket_name"] == "${LOKI_GCS_BUCKET}"
    assert loki_gcs["ruler"]["storage"]["type"] == "gcs"
    assert loki_gcs["ruler"]["storage"]["gcs"]["bucket_name"]
    assert loki_gcs["common"]["ring"]["kvstore"]["store"] == "memberlist"
    assert loki_gcs["memberlist"]["join_members"]
    assert loki_gcs["common"]["replication_factor"] >= 3
    assert loki_gcs["common"]["compactor_address"].startswith("http://")
    header = LOKI_GCS.read_text().split("\n\n", 1)[0]
    for target in ("write", "read", "backend"):
        assert f"-target={target}" in header
    assert "-config.expand-env=true" in header


def test_both_configs_agree_on_what_entries_look_like(loki, loki_gcs) -> None:
    for key in ("allow_structured_metadata", "max_line_size", "reject_old_samples_max_age",
                "max_label_names_per_series", "max_structured_metadata_size", "discover_log_levels"):
        assert loki["limits_config"][key] == loki_gcs["limits_config"][key], key


def test_byte_size_and_hours_follow_loki_units() -> None:
    assert byte_size("256KB") == 262_144
    assert byte_size("16MB") == 16 * 2**20
    with pytest.raises(AssertionError):
        byte_size("256KiB")
    assert hours("168h") == 168
    assert hours("1h30m") == 1.5


@pytest.mark.real_loki
@pytest.mark.parametrize("path", [LOKI, LOKI_GCS], ids=["loki.yaml", "loki-gcs.yaml"])
def test_configs_load_in_the_real_loki(path: Path) -> None:
    binary = find_loki_binary()
    if binary is None:
        pytest.skip("no Loki binary: set LOKI_BINARY or put loki on PATH")
    env = {"LOKI_GCS_BUCKET": "b", "LOKI_GCS_RULER_BUCKET": "r", "LOKI_MEMBERLIST_JOIN": "loki-memberlist",
           "LOKI_ALERTMANAGER_URL": "http://alertmanager:9093", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [binary, f"-config.file={path}", "-config.expand-env=true", "-verify-config"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config is valid" in result.stdout + result.stderr
