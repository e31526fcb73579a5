"""Write docs/settings.md from the settings classes: every environment variable of the shipper and
the gateway, and every key of the shipper's sources file, with type, default and description.

    python scripts/settings_doc.py            # rewrite docs/settings.md
    python scripts/settings_doc.py --check    # exit 1 when docs/settings.md is stale (the tests run this)
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import NoDecode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.config import GatewaySettings  # noqa: E402
from shipper.config import (  # noqa: E402
    FirestoreSourceConfig,
    GcsSourceConfig,
    PodsSourceConfig,
    ShipperSettings,
)

TARGET = REPO / "docs" / "settings.md"
SOURCES_EXAMPLE = """\
# SHIPPER_CONFIG_FILE=/etc/shipper/sources.yaml
sources:
  - type: gcs
    id: trading-logs            # names the checkpoint; unique in the file
    bucket: my-trading-bucket
    prefixes: [trades/, reflections/, strategies/]
  - type: gcs
    id: archive
    bucket: my-archive-bucket
    prefixes: [exports/]
  - type: firestore
    project_id: my-project
    collections: [gpt_runner_trades, gpt_runner_reflections]
    timestamp_fields: {gpt_runner_trades: executed_at}
  - type: pods
    namespace: gpt
    label_selector: app=gpt-runner
"""


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in arguments if a is not type(None)]
        return " or ".join(named) + (" (optional)" if type(None) in arguments else "")
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in arguments)
    if origin is list:
        return "list of " + type_name(arguments[0])
    if origin is dict:
        return f"map of {type_name(arguments[0])} to {type_name(arguments[1])}"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path",
             SecretStr: "secret"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, list):
        return "`" + ",".join(str(v) for v in value) + "`" if value else "empty"
    if isinstance(value, dict):
        return "empty" if not value else f"`{value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`" if str(value) != "" else "empty"


def descriptions(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> its description: the docstring under the field in the class body (what
    pydantic's use_attribute_docstrings would read at every import), else Field(description=...)."""
    found = {name: field.description for name, field in model.model_fields.items() if field.description}
    body = ast.parse(textwrap.dedent(inspect.getsource(model))).body[0]
    assert isinstance(body, ast.ClassDef)
    for statement, following in zip(body.body, body.body[1:], strict=False):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def table(model: type[BaseModel], *, environment: bool) -> list[str]:
    rows = [f"| {'Variable' if environment else 'Key'} | Type | Default | Description |", "|---|---|---|---|"]
    described = descriptions(model)
    for name, field in model.model_fields.items():
        shown = name.upper() if environment else name
        description = described.get(name, "").replace("|", "\\|").replace("\n", " ")
        kind = "comma-separated list" if NoDecode in field.metadata else type_name(field.annotation)
        rows.append(f"| `{shown}` | {kind} | {default_text(field)} | {description} |")
    return rows


def render() -> str:
    lines = [
        "# Settings reference",
        "",
        "Generated from the settings classes by `python scripts/settings_doc.py`; a test fails when it",
        "is stale. Variable names are case-insensitive. Secrets have no defaults. The Google clients'",
        "own `GOOGLE_APPLICATION_CREDENTIALS`, `STORAGE_EMULATOR_HOST` and `FIRESTORE_EMULATOR_HOST`",
        "work as usual.",
        "",
        "## Shipper (`shipper once | run | check | backfill`)",
        "",
        *table(ShipperSettings, environment=True),
        "",
        "## Gateway (`gateway serve`)",
        "",
        *table(GatewaySettings, environment=True),
        "",
        "## Sources file (`SHIPPER_CONFIG_FILE`)",
        "",
        "For more than one source of a kind. When it is set, `GCS_BUCKET_NAME`, `FIRESTORE_PROJECT_ID`",
        "and `KUBERNETES_ENABLED` must not be (the shipper refuses to guess which one wins), and an",
        "unknown key is an error, not a default.",
        "",
        "```yaml",
        SOURCES_EXAMPLE.rstrip("\n"),
        "```",
        "",
    ]
    for title, model in (("`type: gcs`", GcsSourceConfig), ("`type: firestore`", FirestoreSourceConfig),
                         ("`type: pods`", PodsSourceConfig)):
        lines += [f"### {title}", "", *table(model, environment=False), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/settings.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(REPO)} is stale: run python scripts/settings_doc.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
