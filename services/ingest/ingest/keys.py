"""Write keys: which keys are valid and which source each one names.

A key is looked up by its SHA-256 digest and then compared with
`hmac.compare_digest`, so the time an answer takes does not depend on how
many leading characters of a guess were right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shared.errors import SettingsError

DEFAULT_SOURCE = "default"


@dataclass(frozen=True, slots=True)
class WriteKey:
    key: str
    source: str


class WriteKeys:
    def __init__(self, keys: Iterable[WriteKey]) -> None:
        self._by_digest = {_digest(k.key): k for k in keys}
        if not self._by_digest:
            raise SettingsError(
                "no write key configured: set INGEST_WRITE_KEYS (key:source,...) "
                "or INGEST_WRITE_KEYS_FILE"
            )

    @classmethod
    def load(cls, keys_text: str, keys_file: Path | None) -> WriteKeys:
        """Keys from the comma-separated setting and, when given, from the keys file."""
        entries = [(part, "INGEST_WRITE_KEYS") for part in keys_text.split(",")]
        if keys_file is not None:
            try:
                lines = keys_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise SettingsError(f"INGEST_WRITE_KEYS_FILE={keys_file}: {exc}") from None
            entries += [
                (line, f"{keys_file}:{number}")
                for number, line in enumerate(lines, start=1)
                if not line.strip().startswith("#")
            ]
        return cls(parse_entry(text, where) for text, where in entries if text.strip())

    def __len__(self) -> int:
        return len(self._by_digest)

    def find(self, candidate: str) -> WriteKey | None:
        known = self._by_digest.get(_digest(candidate))
        if known is None or not hmac.compare_digest(known.key.encode(), candidate.encode()):
            return None
        return known


def parse_entry(text: str, where: str) -> WriteKey:
    key, _, source = text.strip().partition(":")
    key, source = key.strip(), source.strip()
    if not key:
        raise SettingsError(f"{where}: empty write key in {text!r}")
    return WriteKey(key=key, source=source or DEFAULT_SOURCE)


def key_from_basic_auth(authorization: str) -> str | None:
    """The user name of an HTTP Basic header (Segment: write key, empty password).

    None when the header is not Basic or not decodable; the caller answers 401.
    """
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
