"""A development SMTP server (aiosmtpd) that stores every message it accepts as a .eml file.

    python -m notifier.devsmtp --host 127.0.0.1 --port 2525 --maildir .local/mail

Tests start it in-process (`async with DevSmtp(maildir) as smtp: smtp.port`).
Recipients at two reserved domains exercise the error paths of a real server:
`…@reject.invalid` → 550 (permanent), `…@tempfail.invalid` → 451 (transient).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import os
import signal
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session

REJECT_DOMAIN = "reject.invalid"
TEMPFAIL_DOMAIN = "tempfail.invalid"


class _MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, _server: SMTP, _session: Session, envelope: Envelope, address: str, _options: Any
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain == REJECT_DOMAIN:
            return "550 5.1.1 mailbox unavailable"
        if domain == TEMPFAIL_DOMAIN:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, _server: SMTP, _session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode()
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.eml"  # sorts by arrival
        # Write then rename: a reader never sees half a message; a kill between the two
        # leaves only a .tmp file, and the client, having no 250, retries the message.
        temporary = self.maildir / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.maildir / name)
        return "250 2.0.0 message accepted"


class DevSmtp:
    """Start/stop an SMTP sink on the running event loop; port 0 picks a free port."""

    def __init__(self, maildir: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.maildir = maildir
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._protocols: set[SMTP] = set()

    async def start(self) -> None:
        self.maildir.mkdir(parents=True, exist_ok=True)
        handler = _MaildirHandler(self.maildir)
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            smtp = SMTP(handler, hostname="devsmtp.local", ident="lifecycle devsmtp", loop=loop)
            self._protocols.add(smtp)
            return smtp

        self._server = await loop.create_server(protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for smtp in self._protocols:
            if smtp.transport is not None:
                smtp.transport.close()
        await self._server.wait_closed()
        self._server = None

    def messages(self) -> list[EmailMessage]:
        """Every stored message, oldest first (file names are time-ordered)."""
        found = []
        for path in sorted(self.maildir.glob("*.eml")):
            parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if isinstance(parsed, EmailMessage):
                found.append(parsed)
        return found

    def message_ids(self) -> list[str]:
        """The Message-ID of each stored message: a repeated id is a re-sent message that a
        provider keyed on Message-ID would have dropped."""
        return [str(message["Message-ID"]).strip() for message in self.messages()]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def _serve(host: str, port: int, maildir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with DevSmtp(maildir, host=host, port=port) as smtp:
        sys.stdout.write(f"devsmtp listening on {smtp.host}:{smtp.port}, storing to {maildir}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m notifier.devsmtp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525, help="0 picks a free port")
    parser.add_argument("--maildir", type=Path, default=Path(".local/mail"))
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.maildir))


if __name__ == "__main__":
    main()
