"""`shipper` command line: once | run | check | backfill.

Exit codes: 0 success; 1 a pass or a check failed (Loki unavailable, source unreadable); 2 bad
configuration or a corrupt/unreadable checkpoint (the message names the file); 3 the passes
finished but some records could not be stored - refused by Loki (too old, too far behind, line or
labels refused) or skipped by the source (unreadable, no timestamp) - counted by reason in
shipper_entries_rejected_total / shipper_records_skipped_total and printed per source."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

import httpx
from pydantic import ValidationError

from shipper.checkpoint import Checkpointer, CheckpointError, FileCheckpointer
from shipper.config import ShipperSettings, SourceConfig, get_settings
from shipper.logs import configure_logging, loki_handler_from
from shipper.metrics import MetricsServerError
from shipper.pipeline import PassResult, Pipeline
from shipper.settings_errors import describe_settings_error, environment_help, program_version
from shipper.sinks import Sink, SinkUnavailable
from shipper.sinks.loki.client import LokiSink
from shipper.sinks.loki.transport import stoppable_sleep
from shipper.sources.base import Backfillable, BackfillPass, Source
from shipper.sources.factory import build_backfill, build_source

log = logging.getLogger("shipper")

BACKFILL_SUFFIX = ".backfill"  # the checkpoint id of a source's backfill: <source id>.backfill
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_PARTIAL = 3
EXIT_BACKFILL_REFUSED = EXIT_PARTIAL
EXIT_CODES = ("exit codes: 0 every record shipped; 1 a pass or check failed; 2 bad configuration or "
              "checkpoint; 3 finished, but some records could not be stored (refused by Loki or skipped, "
              "counted by reason)")
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


CREDENTIALS_HINT = (
    "Google clients find credentials in GOOGLE_APPLICATION_CREDENTIALS (a service-account key file), "
    "`gcloud auth application-default login` on a workstation, or Workload Identity on GKE; "
    "with STORAGE_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST set they need none (README: Credentials)"
)

KUBERNETES_HINT = (
    "in a pod the service account's token is used (automountServiceAccountToken); elsewhere KUBECONFIG "
    "or ~/.kube/config; or set KUBERNETES_ENABLED=false"
)


class ConfigProblem(Exception):
    """The configuration cannot work; the message says what to set."""


def access_problem(exc: Exception) -> str | None:
    """Missing Google or Kubernetes credentials in an operator's words; None for anything else.
    Matched by name so that the CLI does not import the Kubernetes client (~0.35 s) to start."""
    kind = f"{type(exc).__module__}.{type(exc).__name__}"
    if kind == "google.auth.exceptions.DefaultCredentialsError":
        return f"no Google credentials: {exc}\n{CREDENTIALS_HINT}"
    if kind == "kubernetes.config.config_exception.ConfigException":
        return f"no Kubernetes API access: {exc}\n{KUBERNETES_HINT}"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shipper", description="Ship GCS, Firestore and pod logs to Loki.",
                                     epilog=f"{EXIT_CODES} {environment_help(ShipperSettings)}")
    parser.add_argument("--version", action="version", version=f"%(prog)s {program_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    once = commands.add_parser("once", help="run one pass of every (or one) source and exit (3: some "
                                "records not stored)", epilog=EXIT_CODES)
    once.add_argument("--source", help="source id (default: all configured sources)")
    commands.add_parser("run", help="run every source on its interval; serve /metrics")
    commands.add_parser("check", help="verify config, Loki reachability and source access")
    backfill = commands.add_parser("backfill", help="ship GCS history updated since T (progress bar)")
    backfill.add_argument("--since", required=True,
                          help="RFC 3339 time, epoch seconds, or a relative age such as 36h or 7d")
    backfill.add_argument("--source", help="source id (default: all configured gcs sources)")
    backfill.add_argument("--separate-stream", action="store_true",
                          help='ship into streams labelled backfill="true" (not deduplicated against live)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"shipper: invalid configuration:\n{describe_settings_error(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, loki=loki_handler_from(settings, "shipper"))
    commands: dict[str, Callable[[argparse.Namespace, ShipperSettings], int]] = {
        "once": cmd_once, "run": cmd_run, "check": cmd_check, "backfill": cmd_backfill,
    }
    try:
        return commands[args.command](args, settings)
    except (ConfigProblem, CheckpointError, MetricsServerError) as exc:
        print(f"shipper: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        problem = access_problem(exc)
        if problem is None:
            raise
        print(f"shipper: {problem}", file=sys.stderr)
        return EXIT_CONFIG


# -- commands -------------------------------------------------------------------------------------


def cmd_once(args: argparse.Namespace, settings: ShipperSettings) -> int:
    configs = select_sources(settings, args.source)
    checkpointer = make_checkpointer(settings)
    failed = partial = False
    with loki_sink(settings) as sink:
        for config in configs:
            try:
                source = build_source(config, settings)
            except Exception as exc:
                print(f"{config.id}: FAILED cannot build source: {type(exc).__name__}: {exc}")
                failed = True
                continue
            try:
                result = make_pipeline(source, sink, checkpointer, settings).run_once()
            except CheckpointError:
                raise
            except Exception as exc:  # counted as a failed run by the pipeline; logged with traceback
                log.exception("pass of %s crashed", config.id, extra={"event": "source_pass_crashed"})
                print(f"{config.id}: FAILED {type(exc).__name__}: {exc}")
                failed = True
                continue
            print(describe(result))
            failed = failed or not result.ok
            partial = partial or result.partial
    return EXIT_FAILED if failed else EXIT_PARTIAL if partial else EXIT_OK


def cmd_run(args: argparse.Namespace, settings: ShipperSettings) -> int:
    from shipper.leader import LeaderElector
    from shipper.metrics import serve_metrics
    from shipper.scheduler import build_scheduler

    configs = select_sources(settings, None)
    checkpointer = make_checkpointer(settings)
    for config in configs:
        checkpointer.load(config.id)  # a corrupt checkpoint stops the start, naming the file
    elector = LeaderElector.from_settings(settings)
    stop = threading.Event()
    if settings.shipper_leader_election:
        elector.renew_in_background(stop)

    def leading() -> bool:
        """A pass goes on while this replica leads and is not stopping: on SIGTERM it ends at its
        next push or commit, with what Loki acknowledged committed."""
        return not stop.is_set() and elector.is_leader()

    with loki_sink(settings, stopping=stop) as sink:
        pipelines = [make_pipeline(build_source(config, settings), sink, checkpointer, settings,
                                   still_leading=leading)
                     for config in configs]
        scheduler = build_scheduler(pipelines, interval_seconds=settings.shipper_interval_seconds,
                                    should_run=elector.is_leader)
        serve_metrics(settings.shipper_metrics_port, settings.shipper_metrics_host)

        def stop_passes(signal_name: str) -> None:
            """A pass in progress ends at its next push or commit, or at its next wait for Loki (a
            retry during an outage ends at once), having committed what Loki acknowledged; then
            the Lease is released below."""
            log.warning("%s: stopping; a pass waiting for Loki abandons its push, whose records are "
                        "sent again on the next start", signal_name, extra={"event": "shipper_stopping"})
            stop.set()
            scheduler.shutdown(wait=True)

        signal.signal(signal.SIGTERM, lambda *_: stop_passes("SIGTERM"))
        log.info("shipper running: %d sources every %ss, metrics on :%d", len(pipelines),
                 settings.shipper_interval_seconds, settings.shipper_metrics_port,
                 extra={"event": "shipper_started", "sources": [p.source.id for p in pipelines]})
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            if scheduler.running:  # Ctrl-C
                stop_passes("SIGINT")
            stop.set()
            elector.release()
    return EXIT_OK


def cmd_check(args: argparse.Namespace, settings: ShipperSettings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    ok = True

    def report(name: str, passed: bool, detail: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(f"{name}: {'OK' if passed else 'FAIL'} {detail}", file=out)

    try:
        configs = select_sources(settings, None)
    except ConfigProblem as exc:
        report("config", False, str(exc))
        configs = []
    else:
        listed = ", ".join(f"{c.id} ({c.type})" for c in configs)
        report("config", True, f"{len(configs)} source(s): {listed}")
    with loki_sink(settings) as sink:
        try:
            report("loki", True, sink.ready())
        except SinkUnavailable as exc:
            report("loki", False, str(exc))
    checkpointer = make_checkpointer(settings)
    for config in configs:
        try:
            cursor = checkpointer.load(config.id)
            report(f"checkpoint {config.id}", True,
                   f"{checkpointer.location(config.id)} ({'none yet' if cursor is None else 'readable'})")
        except CheckpointError as exc:
            report(f"checkpoint {config.id}", False, str(exc))
        try:
            report(f"source {config.id}", True, build_source(config, settings).check())
        except Exception as exc:
            report(f"source {config.id}", False, f"{type(exc).__name__}: {exc}")
    return EXIT_OK if ok else EXIT_FAILED


def cmd_backfill(args: argparse.Namespace, settings: ShipperSettings) -> int:
    since_ns = parse_since(args.since)
    configs = [config for config in select_sources(settings, args.source) if config.type == "gcs"]
    if not configs:
        raise ConfigProblem("backfill supports gcs sources only, and none is selected")
    checkpointer = make_checkpointer(settings)
    suffix = ".backfill-separate" if args.separate_stream else BACKFILL_SUFFIX
    failed, partial, refused = False, False, 0
    with loki_sink(settings) as sink:
        for config in configs:
            source = build_backfill(config, settings, since_ns=since_ns, separate_stream=args.separate_stream,
                                    live_cursor=checkpointer.load(config.id))
            result = _backfill_with_progress(source, make_pipeline(
                source, sink, checkpointer, settings, checkpoint_id=config.id + suffix))
            print(describe(result))
            failed = failed or not result.ok
            partial = partial or result.partial
            refused += result.rejected.get("too_far_behind", 0)
    if failed:
        return EXIT_FAILED
    if refused:
        hint = "" if args.separate_stream else "; re-run with --separate-stream to ship them"
        print(f"backfill: Loki refused {refused} entries as too far behind newer entries of the same "
              f"stream (counted in shipper_entries_rejected{{reason=\"too_far_behind\"}}){hint}")
    return EXIT_PARTIAL if partial else EXIT_OK


# -- helpers --------------------------------------------------------------------------------------


def _backfill_with_progress(source: BackfillPass, pipeline: Pipeline) -> PassResult:
    """One backfill pass under a progress bar in bytes of the objects to read (a total and an ETA,
    which a count of lines cannot give), with the lines shipped beside it."""
    from tqdm import tqdm  # only here: the other commands start faster without it

    planned = source.pending_objects()
    with tqdm(total=sum(info.size for info in planned), unit="B", unit_scale=True,
              desc=f"backfill {source.id} ({len(planned)} objects)", file=sys.stderr) as bar:
        lines = 0

        def shipped(count: int) -> None:
            nonlocal lines
            lines += count
            bar.set_postfix(lines=lines, refresh=False)

        source.follow(lambda info: bar.update(info.size))
        pipeline.on_progress = shipped
        return pipeline.run_once()


def select_sources(settings: ShipperSettings, source_id: str | None) -> list[SourceConfig]:
    try:
        configs = settings.sources()
    except (OSError, ValidationError, ValueError) as exc:
        raise ConfigProblem(f"cannot read sources from {settings.shipper_config_file}: {exc}") from exc
    if not configs:
        raise ConfigProblem(
            "no source configured: set GCS_BUCKET_NAME, FIRESTORE_PROJECT_ID or KUBERNETES_ENABLED=true, "
            "or list sources in SHIPPER_CONFIG_FILE"
        )
    if source_id is None:
        return configs
    chosen = [config for config in configs if config.id == source_id]
    if not chosen:
        raise ConfigProblem(f"unknown source {source_id!r}; configured: {', '.join(c.id for c in configs)}")
    return chosen


@contextmanager
def loki_sink(settings: ShipperSettings, stopping: threading.Event | None = None) -> Iterator[LokiSink]:
    """The Loki sink; with `stopping`, setting it ends retries at once (see stoppable_sleep)."""
    with httpx.Client(timeout=settings.loki_timeout_seconds) as client:
        try:
            sleep = stoppable_sleep(stopping) if stopping is not None else time.sleep
            sink = LokiSink.from_settings(settings, client=client, sleep=sleep)
        except ValueError as exc:
            raise ConfigProblem(f"Loki settings: {exc}") from exc
        yield sink


def make_checkpointer(settings: ShipperSettings) -> Checkpointer:
    """GCS when SHIPPER_STATE_URL is set (replicas share it), else SHIPPER_STATE_DIR."""
    if settings.shipper_state_url is None:
        return FileCheckpointer(settings.shipper_state_dir)
    from shipper.checkpoint_gcs import GcsCheckpointer
    from shipper.sources.gcs.listing import build_storage_client

    try:
        return GcsCheckpointer(settings.shipper_state_url, build_storage_client())
    except ValueError as exc:
        raise ConfigProblem(f"SHIPPER_STATE_URL: {exc}") from exc


def make_pipeline(
    source: Source,
    sink: Sink,
    checkpointer: Checkpointer,
    settings: ShipperSettings,
    *,
    checkpoint_id: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    still_leading: Callable[[], bool] | None = None,
) -> Pipeline:
    """`checkpoint_id` None: the source's live pass."""
    if checkpoint_id is None:
        _borrow_from_backfill(source, checkpointer)
    return Pipeline(
        source, sink, checkpointer, checkpoint_id=checkpoint_id, max_entries=settings.batch_max_entries,
        max_bytes=settings.batch_max_bytes, max_wait_seconds=settings.batch_max_wait_seconds,
        pushes_in_flight=settings.pushes_in_flight, push_concurrency=settings.push_concurrency,
        on_progress=on_progress, still_leading=still_leading,
    )


def _borrow_from_backfill(source: Source, checkpointer: Checkpointer) -> None:
    """A live pass of a source with a backfill reads the backfill's checkpoint (GCS: the timestamp
    base of an object a backfill shipped before the live pass first saw it, else a line without its
    own timestamp would be stored twice)."""
    if isinstance(source, Backfillable):
        backfill_id = source.id + BACKFILL_SUFFIX
        source.borrow_from_backfill(lambda: checkpointer.load(backfill_id))


def describe(result: PassResult) -> str:
    rejected = ", ".join(f"{reason}={count}" for reason, count in sorted(result.rejected.items()))
    if result.stopped:
        status = "stopped: shutting down, or no longer the leader"
    elif result.partial:
        status = "PARTIAL (some records could not be stored)"
    else:
        status = "ok" if result.ok else f"FAILED {result.error}"
    text = f"{result.source}: {status}; shipped {result.accepted}, rejected {result.rejected_total}" + (
        f" ({rejected})" if rejected else "")
    if result.skipped:
        skipped = ", ".join(f"{reason}={count}" for reason, count in sorted(result.skipped.items()))
        text += f", skipped {sum(result.skipped.values())} ({skipped})"
    return text


def parse_since(text: str, *, now: Callable[[], float] = time.time) -> int:
    from shipper.records import parse_timestamp_ns

    relative = _RELATIVE.match(text.strip())
    if relative:
        seconds = int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
        return int((now() - seconds) * 1_000_000_000)
    parsed = parse_timestamp_ns(text)
    if parsed is None:
        raise ConfigProblem(f"--since {text!r} is not a time: use RFC 3339, epoch seconds, or e.g. 36h / 7d")
    return parsed
