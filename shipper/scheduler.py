"""`shipper run`: every source on its interval with APScheduler.

One job per source: max_instances=1 (no overlapping passes of a source), coalesce=True (missed
runs collapse into one), jitter (replicas and sources do not hit Loki in lockstep) and a misfire
grace of one interval. Every job first asks `should_run()` (leader election plugs in there; the
default always runs)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from shipper import metrics
from shipper.checkpoint import CheckpointError
from shipper.pipeline import Pipeline

log = logging.getLogger(__name__)

MAX_JITTER_SECONDS = 30.0
JITTER_FRACTION = 0.1


def always() -> bool:
    return True


def jitter_for(interval_seconds: float) -> int:
    return int(min(MAX_JITTER_SECONDS, interval_seconds * JITTER_FRACTION))


def make_job(pipeline: Pipeline, should_run: Callable[[], bool] = always) -> Callable[[], None]:
    def job() -> None:
        source = pipeline.source.id
        if not should_run():
            log.debug("pass of %s skipped: not the leader", source,
                      extra={"event": "source_pass_skipped", "source": source})
            return
        try:
            pipeline.run_once()
        except CheckpointError as exc:
            metrics.RUNS.labels(source=source, outcome="failure").inc()
            log.error("pass of %s not started: %s", source, exc,
                      extra={"event": "checkpoint_error", "source": source})
        except Exception:
            log.exception("pass of %s crashed", source,
                          extra={"event": "source_pass_crashed", "source": source})

    return job


def build_scheduler(
    pipelines: Sequence[Pipeline],
    *,
    interval_seconds: float,
    should_run: Callable[[], bool] = always,
    scheduler: BaseScheduler | None = None,
    start_now: bool = True,
) -> BaseScheduler:
    scheduler = scheduler if scheduler is not None else BlockingScheduler(timezone=UTC)
    first_run = {"next_run_time": datetime.now(UTC)} if start_now else {}  # None would pause the job
    for pipeline in pipelines:
        scheduler.add_job(
            make_job(pipeline, should_run),
            IntervalTrigger(seconds=interval_seconds, jitter=jitter_for(interval_seconds), timezone=UTC),
            id=f"ship:{pipeline.checkpoint_id}",
            name=f"ship {pipeline.source.id}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval_seconds)),
            replace_existing=True,
            **first_run,
        )
    return scheduler
