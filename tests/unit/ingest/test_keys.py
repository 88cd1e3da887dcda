"""Write keys from the setting and the keys file; Basic auth as Segment's SDKs send it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from ingest.keys import DEFAULT_SOURCE, WriteKey, WriteKeys, key_from_basic_auth

from shared.errors import SettingsError


def test_keys_from_the_setting_map_to_their_sources() -> None:
    keys = WriteKeys.load(" k1:web , k2:ios,k3 ", None)
    assert len(keys) == 3
    assert keys.find("k1") == WriteKey("k1", "web")
    assert keys.find("k2") == WriteKey("k2", "ios")
    assert keys.find("k3") == WriteKey("k3", DEFAULT_SOURCE)
    assert keys.find("k4") is None
    assert keys.find("k1 ") is None
    assert keys.find("") is None


def test_keys_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# production keys\n\nwk_live:web\n  # another comment\nwk_app : android\n")
    keys = WriteKeys.load("k1:web", path)
    assert len(keys) == 3
    assert keys.find("wk_app") == WriteKey("wk_app", "android")


def test_no_key_at_all_fails_at_start_up_naming_the_settings() -> None:
    with pytest.raises(SettingsError, match="INGEST_WRITE_KEYS"):
        WriteKeys.load(" , ", None)


def test_an_empty_key_names_where_it_was(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("good:web\n:orphan\n")
    with pytest.raises(SettingsError, match=r"keys:2"):
        WriteKeys.load("", path)


def test_a_missing_keys_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="INGEST_WRITE_KEYS_FILE"):
        WriteKeys.load("k1", tmp_path / "absent")


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("wk_live:"), "wk_live"),
        (basic("wk_live:ignored-password"), "wk_live"),
        (basic("wk_live"), "wk_live"),
        ("basic " + base64.b64encode(b"wk:").decode(), "wk"),
        (basic(":"), None),
        ("Bearer abc", None),
        ("Basic !!!not-base64", None),
        ("Basic " + base64.b64encode(b"\xff\xfe:").decode(), None),
        ("", None),
    ],
)
def test_the_write_key_is_the_basic_auth_user_name(header: str, expected: str | None) -> None:
    assert key_from_basic_auth(header) == expected
