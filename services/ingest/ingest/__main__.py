"""python -m ingest: the Segment-compatible tracking API on HTTP_HOST:INGEST_PORT (8000).

Routes: POST /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group,
/v1/alias, /v1/batch and /v1/import (same as batch); GET /metrics, /healthz,
/readyz, /openapi.json.

Write keys (at least one is required; the service refuses to start without):
  INGEST_WRITE_KEYS="key1:source1,key2:source2"
      comma-separated; a key without ":source" gets the source "default".
  INGEST_WRITE_KEYS_FILE=/path/to/keys
      one "key:source" per line; blank lines and lines starting with "#" are skipped.
  Both may be given; the keys of both count. The source is stored on each event.
  Clients authenticate as Segment's SDKs do: HTTP Basic with the write key as
  user name and an empty password, or "writeKey" in the JSON body. When an
  Authorization header is sent, it alone decides (a wrong one gets 401).

Answers:
  200 {"success": true}  only after Kafka acknowledged (acks=all) every event.
  /v1/batch: 200 {"success": true, "accepted": n, "rejected": [{"index", "field",
      "reason"}]} when at least one call was valid and acknowledged. The
      rejected items are not written and retrying them cannot help, so SDKs
      (which drop a batch on 400 and retry on 5xx) must count the batch as
      delivered; when no call is valid: 400 (413 when all were too large).
  400 malformed JSON, wrong Content-Type/Content-Encoding, missing ids, wrong
      types, unparseable timestamps; 401 missing or unknown write key;
  413 an event over INGEST_MAX_EVENT_BYTES (32 KB) or a body over
      INGEST_MAX_BODY_BYTES (500 KB), before the whole body is read;
  429 + Retry-After: over INGEST_RATE_LIMIT_PER_S requests/s (burst
      INGEST_RATE_BURST) for one write key;
  503 + Retry-After: Kafka unreachable, not acknowledging within
      INGEST_PRODUCE_TIMEOUT_MS, or INGEST_MAX_IN_FLIGHT_EVENTS already waiting.
  Every error body: {"success": false, "code", "message", "field", "reason"}.

Other settings: shared.settings.CommonSettings (KAFKA_BOOTSTRAP_SERVERS,
TOPIC_EVENTS, TOPIC_PARTITIONS, ...) and ingest/settings.py.
"""

from __future__ import annotations

import sys

from ingest.app import create_app
from ingest.settings import IngestSettings
from shared.errors import SettingsError
from shared.gc_tuning import tune_garbage_collector
from shared.logs import configure_logging
from shared.serve import serve
from shared.settings import load_settings


def main() -> int:
    try:
        settings = load_settings(IngestSettings)
        configure_logging("ingest", settings.log_level)
        app = create_app(settings)
    except SettingsError as exc:
        sys.stderr.write(f"ingest: {exc}\n")
        return 2
    tune_garbage_collector()
    serve(app, host=settings.http_host, port=settings.ingest_port, log_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
