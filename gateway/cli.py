"""`gateway serve [--host H] [--port P]`, `gateway keys new --name N --scope S ...` and
`gateway keys entry ...` (the same line for a key read from stdin, e.g. one kept in a secret store)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import yaml
from pydantic import ValidationError

from gateway.config import DEFAULT_HOST, DEFAULT_PORT, GatewaySettings
from gateway.security import KNOWN_SCOPES, ApiKeyEntry, GatewayConfigError, generate_key, hash_key
from shipper.logs import configure_logging, loki_handler_from
from shipper.settings_errors import describe_settings_error, environment_help, program_version

EXIT_CONFIG_ERROR = 2
MIN_KEY_CHARS = 32  # a key read from stdin must be at least as long as a generated one's random part
RELATIVE_EXPIRY = re.compile(r"^(\d+)([hdw])$")
RELATIVE_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """`90d`, `12h`, `4w`, an ISO date (`2027-01-31`: expires at 00:00 UTC that day) or datetime."""
    now = now or datetime.now(UTC)
    relative = RELATIVE_EXPIRY.match(text.strip())
    if relative:
        amount, unit = relative.groups()
        return now + timedelta(**{RELATIVE_UNITS[unit]: int(amount)})
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            day = date.fromisoformat(text.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"invalid expiry {text!r}: use 90d, 12h, 4w, 2027-01-31 or 2027-01-31T00:00:00+00:00"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Loki monitoring gateway",
                                     epilog=environment_help(GatewaySettings))
    parser.add_argument("--version", action="version", version=f"%(prog)s {program_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"bind address (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    new = key_commands.add_parser("new", help="create a key; prints it once and the line to add")
    entry = key_commands.add_parser(
        "entry", help="print only the line to add for a key read from stdin (never echoed)"
    )
    for command in (new, entry):
        command.add_argument("--name", required=True)
        command.add_argument(
            "--scope", action="append", required=True, choices=sorted(KNOWN_SCOPES),
            help="repeat for several scopes; admin implies all",
        )
        command.add_argument("--tenant", help="Loki tenant (X-Scope-OrgID) for this key's queries")
        command.add_argument("--label-policy", help='selector injected into every query, e.g. {source="gcs"}')
        command.add_argument("--expires", type=parse_expiry, help="90d, 12h, 4w, or an ISO date/datetime")
    return parser


def _keys_file_line(args: argparse.Namespace, key: str) -> str | None:
    """The keys-file line for `key` (its digest, never the key), or None after printing why not."""
    try:
        entry = ApiKeyEntry(
            name=args.name,
            sha256=hash_key(key),
            scopes=frozenset(args.scope),
            tenant=args.tenant,
            label_policy=args.label_policy,
            expires_at=args.expires,
        )
    except ValidationError as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return None
    line = entry.model_dump(mode="json", exclude_none=True)
    line["scopes"] = sorted(entry.scopes)
    dumped: str = yaml.safe_dump(line, default_flow_style=True, sort_keys=False, width=10**6)
    return "- " + dumped.strip()


def _keys_new(args: argparse.Namespace) -> int:
    key = generate_key()
    yaml_line = _keys_file_line(args, key)
    if yaml_line is None:
        return EXIT_CONFIG_ERROR
    print(f"API key for {args.name!r} (shown only this once; store it in a secret manager):")
    print(key)
    print("\nAdd this line to the list in GATEWAY_API_KEYS_FILE:")
    print(yaml_line)
    return 0


def _keys_entry(args: argparse.Namespace) -> int:
    key = sys.stdin.readline().strip()
    if len(key) < MIN_KEY_CHARS or not key.isprintable():
        print(f"gateway: error: expected one key of at least {MIN_KEY_CHARS} printable characters on stdin",
              file=sys.stderr)
        return EXIT_CONFIG_ERROR
    yaml_line = _keys_file_line(args, key)
    if yaml_line is None:
        return EXIT_CONFIG_ERROR
    print(yaml_line)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.main import create_app

    try:
        settings = GatewaySettings()
        # one JSON object per line, as the shipper logs; into Loki too with LOG_TO_LOKI=true
        configure_logging(settings.log_level, loki=loki_handler_from(settings, "gateway"))
        app = create_app(settings)
    except ValidationError as exc:
        print(f"gateway: invalid configuration:\n{describe_settings_error(exc)}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except GatewayConfigError as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    # no access log: the audit log records every authenticated request already; log_config=None
    # keeps uvicorn's own lines on our JSON handler instead of its text one
    uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level.lower(), access_log=False,
                log_config=None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _keys_new(args) if args.keys_command == "new" else _keys_entry(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
