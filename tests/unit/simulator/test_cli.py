"""The `lifecycle` command line refuses bad invocations with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from simulator.cli import main
from simulator.run import parse_args
from simulator.settings import RunSettings


def test_simulate_without_a_write_key_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LIFECYCLE_WRITE_KEY", raising=False)
    assert main(["simulate", "--users", "5"]) == 2
    assert "LIFECYCLE_WRITE_KEY" in capsys.readouterr().err


def test_import_of_a_missing_file_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.csv"
    assert main(["import", str(missing), "--write-key", "k"]) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err


def test_import_with_a_bad_mapping_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.csv"
    path.write_text("user_id,event,timestamp\n")
    assert main(["import", str(path), "--column", "colour=c", "--write-key", "k"]) == 2
    assert "unknown field 'colour'" in capsys.readouterr().err


def test_make_run_options_default_to_run_variables() -> None:
    settings = RunSettings(run_users=300, run_days=40, run_headless=True)
    args = parse_args([], settings)
    assert (args.users, args.days, args.headless, args.fresh) == (300, 40, True, False)
    args = parse_args(["--users", "10", "--fresh", "--duration-seconds", "5"], settings)
    assert (args.users, args.fresh, args.duration_seconds) == (10, True, 5.0)
    with pytest.raises(SystemExit):
        parse_args(["--days", "0"], settings)
