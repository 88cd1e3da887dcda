"""`lifecycle simulate`: wire the world, ingest, the topics and the view, then run."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from rich.console import Console
from rich.live import Live

from shared.kafka.admin import ensure_topics
from shared.topics import Topics
from simulator.ingest_client import IngestClient
from simulator.model import World
from simulator.population import PopulationShape
from simulator.probes import ServiceProbe
from simulator.settings import SimulatorSettings
from simulator.simulate import Pacing, Simulation
from simulator.stats import LiveStats
from simulator.view import final_report, live_view, progress_line
from simulator.watch import TopicWatch

DEFAULT_START = datetime(2025, 1, 6, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    users: int = 2_000
    days: int = 60
    seed: int = 7
    start: datetime = DEFAULT_START
    id_prefix: str = ""
    seconds_per_day: float = 1.0
    headless: bool = False
    report: Path | None = None
    max_lag_days: float = 1.0


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=2_000, help="simulated users (2000)")
    parser.add_argument("--days", type=int, default=60, help="simulated days (60)")
    parser.add_argument("--seed", type=int, default=7, help="random seed: same seed, same users")
    parser.add_argument(
        "--seconds-per-day", type=float, default=1.0, help="wall seconds per simulated day (1.0)"
    )
    parser.add_argument(
        "--max-lag-days",
        type=float,
        default=1.0,
        help="hold simulated time while a service is more than this many simulated days "
        "behind (1.0; 0 = never hold)",
    )
    parser.add_argument("--headless", action="store_true", help="plain progress lines, no view")
    parser.add_argument("--report", type=Path, help="write the final figures as JSON here")


def options_from(args: argparse.Namespace) -> SimulateOptions:
    start = datetime.fromisoformat(args.start) if getattr(args, "start", None) else DEFAULT_START
    if start.tzinfo is None:
        raise SystemExit(f"--start {args.start!r}: give a time zone, e.g. {DEFAULT_START}")
    if args.users < 1 or args.days < 1 or args.seconds_per_day <= 0:
        raise SystemExit("--users and --days must be at least 1, --seconds-per-day above 0")
    return SimulateOptions(
        users=args.users,
        days=args.days,
        seed=args.seed,
        start=start,
        id_prefix=getattr(args, "id_prefix", "") or "",
        seconds_per_day=args.seconds_per_day,
        headless=args.headless,
        report=args.report,
        max_lag_days=args.max_lag_days,
    )


class HeadlessLines:
    """Progress lines for logs: one when the figures change, else one every `quiet_s`."""

    def __init__(self, console: Console, *, quiet_s: float = 10.0) -> None:
        self._console = console
        self._quiet_s = quiet_s
        self._last = ""
        self._last_at = 0.0

    def __call__(self, stats: LiveStats) -> None:
        line = progress_line(stats)
        now = time.monotonic()
        if line != self._last or now - self._last_at >= self._quiet_s:
            self._console.print(line, markup=False, highlight=False)
            self._last, self._last_at = line, now


async def run_simulation(
    options: SimulateOptions, settings: SimulatorSettings, *, write_key: str, console: Console
) -> LiveStats:
    """Run one simulation against running services; print the final report; return it."""
    topics = Topics.from_settings(settings)
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        topics.all(),
        partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
        min_insync_replicas=settings.topic_min_insync_replicas,
    )
    world = World(
        shape=PopulationShape(users=options.users, days=options.days),
        seed=options.seed,
        start=options.start,
        id_prefix=options.id_prefix,
    )
    stats = LiveStats(start=options.start, days=options.days, sim_now=options.start)
    watch = TopicWatch(settings.kafka_bootstrap_servers, topics, stats)
    probe = ServiceProbe(settings.service_url("stage_engine"), settings.service_url("notifier"))
    ingest = IngestClient(settings.service_url("ingest"), write_key)
    simulation = Simulation(
        world,
        ingest=ingest,
        watch=watch,
        probe=probe,
        stats=stats,
        pacing=Pacing(seconds_per_day=options.seconds_per_day, max_lag_days=options.max_lag_days),
    )
    try:
        await watch.start()
        if options.headless:
            await simulation.run(HeadlessLines(console))
        else:
            with Live(live_view(stats), console=console, refresh_per_second=4) as live:
                await simulation.run(lambda current: live.update(live_view(current)))
    finally:
        await watch.stop()
        await probe.close()
        await ingest.close()
    console.print(final_report(stats))
    if options.report is not None:
        # Written once at the end; a kill before it leaves no report, never half of one.
        tmp = options.report.with_suffix(options.report.suffix + ".tmp")
        tmp.write_bytes(orjson.dumps(stats.summary(), option=orjson.OPT_INDENT_2))
        tmp.replace(options.report)
    return stats
