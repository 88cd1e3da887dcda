"""The relay's partition choice is the Kafka default partitioner's, key for key."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from shared.kafka.partitioning import partition_for

_AIOKAFKA = DefaultPartitioner()


@given(key=st.binary(max_size=300), count=st.integers(min_value=1, max_value=200))
def test_a_key_goes_where_aiokafka_and_the_java_client_send_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_for(key, partitions) == _AIOKAFKA(key, partitions, partitions)


# Apache Kafka's own murmur2 vectors (UtilsTest.testMurmur2 in the Java client), signed.
_JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_the_hash_is_the_java_clients() -> None:
    """Pinned to Kafka's values, not only to another Python port of them."""
    for count in (1, 7, 12, 1000):
        partitions = list(range(count))
        for key, java_hash in _JAVA_MURMUR2.items():
            assert partition_for(key, partitions) == (java_hash & 0x7FFFFFFF) % count, key
