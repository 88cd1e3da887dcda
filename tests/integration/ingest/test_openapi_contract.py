"""/openapi.json matches the behaviour: schemathesis, against the live service and the real
broker, finds no 5xx and no response that breaks the documented schema."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from shared.topics import Topics
from tests.integration.ingest.support import WRITE_KEY, served, settings_for

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
RUNS = {
    # Every operation, schema-driven valid and invalid bodies.
    "fuzzing": ["--phases", "examples,fuzzing", "--max-examples", "15"],
    # Systematic edge cases (each field missing, wrong type, at its bounds), for the
    # single-call and the batch code paths that differ in what they require.
    "coverage": ["--phases", "coverage", "--include-path-regex", "^/v1/(track|group)$"],
}


async def schemathesis(url: str, arguments: list[str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--auth",
        f"{WRITE_KEY}:",
        "--workers",
        "1",
        "--seed",
        "20260105",
        "--request-timeout",
        "10",
        "--max-failures",
        "10",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    return process.returncode or 0, output.decode(errors="replace")


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live_kafka: str, topics: Topics
) -> None:
    # The rate limit stays out of the way: it is tested on its own.
    settings = settings_for(live_kafka, topics, ingest_rate_limit_per_s=100_000)
    async with served(settings) as url:
        for name, arguments in RUNS.items():
            returncode, output = await schemathesis(url, arguments)
            assert returncode == 0, f"schemathesis {name} run failed:\n{output[-6000:]}"
            assert "No issues found" in output, output[-3000:]
