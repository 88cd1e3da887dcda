"""kill -9 of the notifier at random moments while 5,000 transitions flow and 30 % of
provider calls time out: no coupon issued twice, no message sent twice per transition and
action (counted on the sinks by idempotency key), none missing."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from pathlib import Path

import yaml
from notifier.devsink import DevSink
from notifier.devsmtp import DevSmtp
from notifier.ledger import idempotency_key
from notifier.store import tables as t
from sqlalchemy import func, select

from shared.db import make_engine
from shared.notifications import NotificationOutcome, OutcomeResult
from shared.topics import Topics
from shared.transitions import Stage
from tests.integration.notifier.harness import TopicReader, produce, transition
from tests.ports import free_port
from tests.waiting import eventually

TRANSITIONS = 5000
CHUNK = 500
KILLS = 5
CONCURRENCY = 64
ACTIONS = TRANSITIONS // 2 * 3 + TRANSITIONS // 2 * 2  # coupon+email+sms, coupon+call
PLAYBOOK = {
    "holdout_share": 0.0,
    "quiet_hours": {"channels": []},
    "rules": [
        {
            "name": "wakeup",
            "match": {"kind": "stage_changed", "to_stage": "silent"},
            "actions": [
                {"name": "coupon", "channel": "coupon", "params": {"amount": 10}},
                {"name": "email", "channel": "email", "params": {"template": "winback_coupon"}},
                {"name": "sms", "channel": "sms", "params": {"template": "wakeup_push"}},
            ],
        },
        {
            "name": "recall",
            "match": {"kind": "stage_changed", "to_stage": "churned"},
            "actions": [
                {"name": "coupon", "channel": "coupon", "params": {"amount": 20}},
                {"name": "call", "channel": "call", "params": {"template": "recall_call"}},
            ],
        },
    ],
}


def _at_least(wanted: int) -> Callable[[int], bool]:
    return lambda got: got >= wanted


class Notifier:
    """`python -m notifier` as a process we start, kill -9 and start again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._env = env
        self._log = log
        self.process: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "notifier", env=self._env, stderr=log, stdout=log
            )

    async def kill_and_restart(self) -> None:
        assert self.process is not None
        assert self.process.returncode is None, f"notifier exited: {self._tail()}"
        self.process.kill()  # SIGKILL: no shutdown code runs
        await self.process.wait()
        self.kills += 1
        await self.start()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), timeout=30)

    def _tail(self) -> str:
        return self._log.read_text(errors="replace")[-3000:]


@asynccontextmanager
async def notifier_process(env: dict[str, str], log: Path) -> AsyncIterator[Notifier]:
    process = Notifier(env, log)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def test_kill_9_at_random_moments_loses_nothing_and_doubles_nothing(
    live_kafka: str, topics: Topics, fresh_database_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    rng = random.Random(20260105)
    playbook_path = tmp_path / "playbook.yaml"
    playbook_path.write_text(yaml.safe_dump(PLAYBOOK))
    transitions = [
        transition(f"u-{n}", to_stage=Stage.SILENT if n % 2 == 0 else Stage.CHURNED)
        for n in range(TRANSITIONS)
    ]
    maildir = tmp_path / "mail"
    async with (
        DevSmtp(maildir) as smtp,
        DevSink(timeout_share=0.3, hang_ms=1500, seed=5) as sink,
        TopicReader(live_kafka, topics.notifications) as outcomes,
    ):
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": live_kafka,
            "DATABASE_URL": fresh_database_url,
            "TOPIC_EVENTS": topics.events,
            "TOPIC_TRANSITIONS": topics.transitions,
            "TOPIC_NOTIFICATIONS": topics.notifications,
            "TOPIC_PARTITIONS": "3",
            "PLAYBOOK_CONFIG": str(playbook_path),
            "NOTIFIER_PORT": str(free_port()),
            "NOTIFIER_GROUP": f"{topics.transitions}.notifier",
            "NOTIFIER_SMTP_PORT": str(smtp.port),
            "NOTIFIER_SMS_URL": f"{sink.url}/sms",
            "NOTIFIER_CALL_URL": f"{sink.url}/call",
            "NOTIFIER_CONCURRENCY": str(CONCURRENCY),
            "NOTIFIER_PROVIDER_TIMEOUT_MS": "300",
            "NOTIFIER_LEASE_MS": "3000",
            "NOTIFIER_RETRY_BASE_MS": "50",
            "NOTIFIER_RETRY_MAX_MS": "400",
            "NOTIFIER_MAX_ATTEMPTS": "40",  # 0.3**40: every action gets through eventually
            "NOTIFIER_POLL_INTERVAL_MS": "100",
            "NOTIFIER_SESSION_TIMEOUT_MS": "6000",
            "LOG_LEVEL": "WARNING",
        }
        messages_expected = TRANSITIONS // 2 * 2 + TRANSITIONS // 2  # email+sms, call

        async def progress() -> int:
            return len(sink.delivered()) + sum(1 for _ in maildir.glob("*.eml"))

        async with notifier_process(env, tmp_path / "notifier.log") as notifier:
            # Transitions flow in chunks, each once the sinks show progress; kills land at
            # random amounts of progress, so they hit planning, sending and recording alike.
            kill_points = sorted(rng.sample(range(100, messages_expected * 9 // 10), KILLS))
            chunk_points = [n * CHUNK * 3 // 4 for n in range(TRANSITIONS // CHUNK)]
            events = sorted(
                [(p, "chunk") for p in chunk_points] + [(p, "kill") for p in kill_points]
            )
            chunks = iter(range(0, TRANSITIONS, CHUNK))
            for point, what in events:
                await eventually(
                    progress, until=_at_least(point), timeout_s=90, what=f"{point} sent"
                )
                if what == "kill":
                    await notifier.kill_and_restart()
                else:
                    start = next(chunks)
                    await produce(
                        live_kafka, topics.transitions, transitions[start : start + CHUNK]
                    )
            engine = make_engine(fresh_database_url)
            try:

                async def statuses() -> dict[str, int]:
                    async with engine.connect() as conn:
                        query = select(t.actions.c.status, func.count()).group_by(
                            t.actions.c.status
                        )
                        return {row[0]: row[1] for row in await conn.execute(query)}

                async def outbox_backlog() -> int:
                    async with engine.connect() as conn:
                        query = select(func.count()).select_from(t.outbox)
                        return int((await conn.execute(query)).scalar_one())

                final = await eventually(
                    statuses,
                    until=lambda found: found.get("sent") == ACTIONS,
                    timeout_s=120,
                    what="every action recorded as sent",
                )
                await eventually(
                    outbox_backlog, until=lambda n: n == 0, timeout_s=60, what="outbox drained"
                )
                async with engine.connect() as conn:
                    coupons = (await conn.execute(select(t.coupons))).all()
            finally:
                await engine.dispose()
            assert notifier.kills == KILLS
        await eventually(
            outcomes.poll,
            until=lambda v: (
                len({NotificationOutcome.model_validate_json(x).id for x in v}) >= ACTIONS
            ),
            timeout_s=60,
            what="all outcomes published",
        )

        # Ledger: every action sent, exactly one coupon per coupon action.
        assert final == {"sent": ACTIONS}, final
        assert len(coupons) == TRANSITIONS
        assert len({(c.transition_id, c.ledger_key) for c in coupons}) == TRANSITIONS
        code_of = {(c.transition_id, c.ledger_key.split("/")[0]): c.code for c in coupons}

        # HTTP sinks: one delivery per (transition, action), by idempotency key.
        expected_http = {
            idempotency_key(tr.id, "wakeup/sms" if n % 2 == 0 else "recall/call")
            for n, tr in enumerate(transitions)
        }
        delivered = Counter(r["idempotency_key"] for r in sink.delivered())
        assert set(delivered) == expected_http
        assert max(delivered.values()) == 1
        retried = len(sink.requests) - len(delivered)

        # SMTP sink: every email, by its idempotency key, with its own transition's coupon.
        silent = {idempotency_key(tr.id, "wakeup/email"): tr.id for tr in transitions[::2]}
        mails = [
            message_from_bytes(path.read_bytes(), policy=policy.default)
            for path in maildir.glob("*.eml")
        ]
        by_key: defaultdict[str, list[str]] = defaultdict(list)
        for mail in mails:
            body = mail.get_body(("plain",))
            assert body is not None
            by_key[str(mail["X-Lifecycle-Idempotency-Key"])].append(body.get_content())
        assert set(by_key) == set(silent)
        for key, bodies in by_key.items():
            code = code_of[(silent[key], "wakeup")]
            assert all(code in body for body in bodies)
        resent = len(mails) - len(by_key)

        # Outcomes topic: exactly one `sent` per action (re-publications share the id),
        # and each coupon action carries the one code in the ledger.
        unique = {o.id: o for o in outcomes.outcomes()}.values()
        sent = Counter(
            (o.transition_id, o.rule, o.action) for o in unique if o.result == OutcomeResult.SENT
        )
        assert len(sent) == ACTIONS
        assert max(sent.values()) == 1
        for o in unique:
            if o.action == "coupon" and o.result == OutcomeResult.SENT:
                assert o.coupon is not None
                assert o.coupon.code == code_of[(o.transition_id, o.rule)]

        # SMTP has no idempotency key, so a mail accepted ("250") but not yet recorded when
        # the process dies is sent again (same Message-ID). An email sender waits for its
        # result to be committed before its next send, so each kill can catch at most one
        # such mail per sender: at most CONCURRENCY per kill. A mail with a failed attempt
        # (an SMTP timeout after DATA: the outcome was unknown) may have been delivered by
        # that attempt too; its copies are counted apart, as the timeouts' and not the kills'.
        failed_keys = {
            idempotency_key(o.transition_id, "wakeup/email")
            for o in unique
            if o.action == "email" and o.result == OutcomeResult.FAILED
        }
        resent_after_kill = sum(
            len(bodies) - 1 for key, bodies in by_key.items() if key not in failed_keys
        )
        assert resent_after_kill <= KILLS * CONCURRENCY, (resent_after_kill, resent)

    elapsed = time.monotonic() - started
    print(
        f"\nkills={KILLS} http_requests={len(sink.requests)} (retries/replays {retried}) "
        f"emails={len(mails)} (re-sent with the same Message-ID: {resent}, of which "
        f"{resent_after_kill} after a kill and {resent - resent_after_kill} after a timeout) "
        f"elapsed={elapsed:.0f}s"
    )
    assert elapsed < 180
    assert re.search("Traceback", (tmp_path / "notifier.log").read_text()) is None
