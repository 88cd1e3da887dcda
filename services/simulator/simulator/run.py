"""`make run`: the whole pipeline on this machine, driven by the simulator, until Ctrl-C.

Starts (or finds) the local Kafka, the dev SMTP and HTTP sinks, ingest, the
stage engine and the notifier (both on event time, each on its own embedded
SQLite file unless DATABASE_URL is set), waits until each is ready, then runs
`lifecycle simulate` with its live view. Ctrl-C or SIGTERM stops every child
process group (SIGTERM, then SIGKILL after a deadline) and a Kafka it started.

Options come from RUN_ARGS (`make run RUN_ARGS="--users 500 --headless"`) or
from RUN_* variables (RUN_USERS=500).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from shared.errors import LifecycleError
from shared.kafka.admin import ensure_topics
from shared.settings import load_settings
from shared.topics import Topics
from simulator.settings import RunSettings
from simulator.simulate_cmd import DEFAULT_START, SimulateOptions, run_simulation
from simulator.stack.kafka import (
    Broker,
    KafkaStartError,
    delete_topics,
    ensure_local_kafka,
    stop_local_kafka,
)
from simulator.stack.links import print_links
from simulator.stack.plan import StackPaths, plan_stack
from simulator.stack.processes import StartError, Supervisor, stop_leftovers
from simulator.stack.state import busy_ports, claim_next_run, dev_write_key, is_new, wipe

ROOT = Path(__file__).resolve().parents[3]


def parse_args(argv: Sequence[str] | None, settings: RunSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=settings.run_users, help="(2000)")
    parser.add_argument("--days", type=int, default=settings.run_days, help="(60)")
    parser.add_argument("--seed", type=int, default=settings.run_seed, help="(7)")
    parser.add_argument(
        "--seconds-per-day",
        type=float,
        default=settings.run_seconds_per_day,
        help="wall seconds per simulated day (1.0)",
    )
    parser.add_argument(
        "--max-lag-days",
        type=float,
        default=settings.run_max_lag_days,
        help="hold simulated time while a service lags more (simulated days; 0 = never)",
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        default=settings.run_headless,
        help="plain progress lines instead of the live view",
    )
    parser.add_argument(
        "--duration-seconds",
        type=float,
        default=settings.run_duration_seconds,
        help="stop everything after this many seconds",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        default=settings.run_fresh,
        help="wipe the local state (.local/run) and the pipeline's topics first",
    )
    parser.add_argument(
        "--exit-when-done",
        action="store_true",
        default=settings.run_exit_when_done,
        help="stop after the final report instead of keeping the services up",
    )
    args = parser.parse_args(argv)
    if args.users < 1 or args.days < 1 or args.seconds_per_day <= 0:
        parser.error("--users and --days must be at least 1, --seconds-per-day above 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(RunSettings)
    except LifecycleError as exc:
        sys.stderr.write(f"make run: {exc}\n")
        return 2
    args = parse_args(argv, settings)
    return asyncio.run(_run(args, settings, Console(soft_wrap=True)))


async def _run(args: argparse.Namespace, settings: RunSettings, console: Console) -> int:
    paths = StackPaths(settings.run_state_dir)
    supervisor = Supervisor(paths.state_dir, stop_timeout_s=settings.run_stop_timeout_seconds)
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            console.print(f"\n{signal.Signals(signum).name}: stopping everything…")
            main_task.cancel()
        else:
            console.print("stopping now (SIGKILL)")
            supervisor.kill_all()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    if args.duration_seconds:
        loop.call_later(args.duration_seconds, on_signal, signal.SIGALRM)
    broker: Broker | None = None
    code = 0
    try:
        broker = await _start(args, settings, paths, supervisor, console)
        await _simulate(args, settings, paths, broker, console)
        if not args.exit_when_done:
            console.print("simulation finished; the services keep running. Ctrl-C stops them.")
            await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    except (StartError, KafkaStartError, LifecycleError, OSError) as exc:
        console.print(f"make run: {exc}", markup=False, highlight=False)
        code = 1
    finally:
        await supervisor.stop_all()
        if broker is not None and broker.started_here:
            await stop_local_kafka(ROOT)
        console.print(
            f"stopped {len(supervisor.children)} processes"
            + (" and the Kafka broker this run started" if broker and broker.started_here else "")
        )
    return code


async def _start(
    args: argparse.Namespace,
    settings: RunSettings,
    paths: StackPaths,
    supervisor: Supervisor,
    console: Console,
) -> Broker:
    for leftover in stop_leftovers(paths.state_dir):
        console.print(f"stopped {leftover}, left running by an earlier run that was killed")
    ports = {
        "INGEST_PORT": settings.ingest_port,
        "STAGE_ENGINE_PORT": settings.stage_engine_port,
        "NOTIFIER_PORT": settings.notifier_port,
        "RUN_SMTP_PORT": settings.run_smtp_port,
        "RUN_SINK_PORT": settings.run_sink_port,
    }
    if busy := busy_ports(ports):
        raise StartError(
            f"ports in use: {', '.join(busy)}; is another `make run` up? "
            "Stop it, or choose other ports with those variables."
        )
    if "kafka_bootstrap_servers" in settings.model_fields_set:
        broker = Broker(settings.kafka_bootstrap_servers, started_here=False, local=False)
        console.print(f"using Kafka at {broker.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)")
    else:
        console.print("local Kafka: deploy/local/kafka.sh (the first start fetches its jars)…")
        broker = await ensure_local_kafka(ROOT)
        how = "started; stopped again at the end" if broker.started_here else "already running"
        console.print(f"local Kafka at {broker.bootstrap_servers} ({how})")
    topics = Topics.from_settings(settings)
    explicit_db = (
        settings.database_url.get_secret_value()
        if "database_url" in settings.model_fields_set
        else None
    )
    names = ", ".join(topics.all())
    if args.fresh:
        console.print(f"--fresh: wiping {paths.state_dir} and the topics {names}")
        wipe(paths.state_dir)
        await delete_topics(broker.bootstrap_servers, topics)
    elif is_new(paths.state_dir) and explicit_db is None and broker.local:
        # The embedded stores start empty, so the topics must too: an earlier run's events
        # would be replayed into them, and its message ids would shadow this run's as duplicates.
        console.print(f"new state folder {paths.state_dir}: clearing the topics {names}")
        await delete_topics(broker.bootstrap_servers, topics)
    elif is_new(paths.state_dir):
        console.print(
            "note: a new state folder, but the topics may hold an earlier run's events "
            "(--fresh clears them)"
        )
    await ensure_topics(
        broker.bootstrap_servers,
        topics.all(),
        partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
        min_insync_replicas=settings.topic_min_insync_replicas,
    )
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    write_key = _write_key(settings, paths)
    specs = plan_stack(
        settings,
        paths=paths,
        python=sys.executable,
        kafka_bootstrap=broker.bootstrap_servers,
        write_key=write_key,
        database_url=explicit_db,
    )
    for spec in specs:
        child = await supervisor.start(spec)
        console.print(f"started {spec.name} (pid {child.pid}), log {child.log_path}")
        await supervisor.wait_ready(child, timeout_s=settings.run_ready_timeout_seconds)
    print_links(
        console,
        settings=settings,
        paths=paths,
        broker=broker,
        topics=topics,
        write_key=write_key,
        database_url=explicit_db,
    )
    return broker


def _write_key(settings: RunSettings, paths: StackPaths) -> str:
    if settings.lifecycle_write_key is not None:
        return settings.lifecycle_write_key.get_secret_value()
    return dev_write_key(paths.state_dir)


async def _simulate(
    args: argparse.Namespace,
    settings: RunSettings,
    paths: StackPaths,
    broker: Broker,
    console: Console,
) -> None:
    run = claim_next_run(paths.state_dir, default_start=DEFAULT_START, days=args.days)
    options = SimulateOptions(
        users=args.users,
        days=args.days,
        seed=args.seed + run.number,
        start=run.start,
        id_prefix=run.id_prefix,
        seconds_per_day=args.seconds_per_day,
        headless=args.headless,
        report=paths.report,
        max_lag_days=args.max_lag_days,
    )
    sim_settings = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
    await run_simulation(
        options, sim_settings, write_key=_write_key(settings, paths), console=console
    )
    console.print(f"final figures written to {paths.report}")


if __name__ == "__main__":
    sys.exit(main())
