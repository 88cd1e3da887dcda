"""Does a broker answer a metadata request? Used by /readyz and the start scripts.

    python -m shared.kafka.ping 127.0.0.1:9092 [--timeout SECONDS]

exits 0 when it does, 1 when it does not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiokafka import AIOKafkaClient


async def broker_answers(bootstrap_servers: str, *, timeout_s: float = 3.0) -> bool:
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
        client_id="lifecycle-ping",
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=timeout_s)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout=timeout_s)
        return bool(metadata.brokers())
    except Exception:  # noqa: BLE001 - any failure means "not answering"; callers only need a yes/no
        return False
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bootstrap_servers")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    return 0 if asyncio.run(broker_answers(args.bootstrap_servers, timeout_s=args.timeout)) else 1


if __name__ == "__main__":
    sys.exit(main())
