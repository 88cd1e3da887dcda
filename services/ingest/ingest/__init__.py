"""Ingest: a Segment-compatible HTTP tracking API that writes every accepted event to Kafka.

Run it with `python -m ingest` (see __main__.py for settings and answers).
Data flow: routes -> handlers (check, read body, authenticate) -> parse
(pydantic JSON validation) -> normalise (Segment call -> shared Event) ->
publish (Kafka, acknowledged) -> 200.
"""
