"""Dead letters: a poison message goes to `<topic>.dlq` with its original bytes and the error.

The consumer that found it then moves on; the dead-letter record keeps
everything needed to inspect or re-drive it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from shared.topics import dead_letter_topic

HEADER_ERROR = "lifecycle.error"
HEADER_SOURCE_TOPIC = "lifecycle.source.topic"
HEADER_SOURCE_PARTITION = "lifecycle.source.partition"
HEADER_SOURCE_OFFSET = "lifecycle.source.offset"
MAX_ERROR_BYTES = 4096


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_ERROR, self.error.encode()[:MAX_ERROR_BYTES]),
            (HEADER_SOURCE_TOPIC, self.topic.encode()),
            (HEADER_SOURCE_PARTITION, str(self.partition).encode()),
            (HEADER_SOURCE_OFFSET, str(self.offset).encode()),
        ]


async def send_dead_letters(producer: AIOKafkaProducer, letters: list[DeadLetter]) -> None:
    """Write the letters and wait until Kafka acknowledged every one.

    Callers commit the source offsets only after this returns: killed before,
    the poison messages are read again and dead-lettered again (at-least-once,
    duplicates carry the same source offset header).
    """
    futures = [
        await producer.send(
            dead_letter_topic(letter.topic), letter.value, key=letter.key, headers=letter.headers()
        )
        for letter in letters
    ]
    for future in futures:
        await future
