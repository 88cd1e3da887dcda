#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, combined broker+controller) on loopback,
# from the broker jars on Maven Central: no Docker needed.
#   deploy/local/kafka.sh start   resolve jars (cached), format, start, wait until a
#                                 metadata request succeeds, print the bootstrap address
#   deploy/local/kafka.sh stop    stop the broker this script started
#   deploy/local/kafka.sh status  exit 0 when the broker answers
# Idempotent: a second `start` finds the running broker and starts nothing.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
home="${KAFKA_HOME_DIR:-$root/.local/kafka}"
port="${KAFKA_PORT:-9092}"
controller_port="${KAFKA_CONTROLLER_PORT:-$((port + 1))}"
heap="${KAFKA_HEAP:-512m}"
python="${PYTHON:-$root/.venv/bin/python}"
pom="$root/deploy/local/kafka/pom.xml"
libs="$home/libs"
data="$home/data-$port"
pidfile="$home/kafka-$port.pid"
logfile="$home/kafka-$port.log"
bootstrap="127.0.0.1:$port"

answers() { "$python" -m shared.kafka.ping "$bootstrap" --timeout "${1:-3}" >/dev/null 2>&1; }

running_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid; pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

resolve_jars() {
  # The marker holds the pom's checksum, so a changed pin re-resolves once.
  local want; want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f "$libs/.resolved" && "$(cat "$libs/.resolved")" == "$want" ]]; then return 0; fi
  echo "kafka: resolving broker jars from Maven Central into $libs (first run only)" >&2
  rm -rf "$libs"; mkdir -p "$libs"
  mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$libs" >&2
  echo "$want" > "$libs/.resolved"
}

write_config() {
  mkdir -p "$data"
  cat > "$home/server-$port.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data
num.partitions=12
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=168
PROPS
  cat > "$home/log4j2.yaml" <<'LOG'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: WARN
      - name: state.change.logger
        level: WARN
LOG
}

java_cmd=(java -Xms256m "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -Djava.awt.headless=true "-Dlog4j2.configurationFile=$home/log4j2.yaml" -cp "$libs/*")

start() {
  mkdir -p "$home"
  if running_pid >/dev/null && answers; then
    echo "kafka: already running (pid $(cat "$pidfile")), log $logfile" >&2
    echo "KAFKA_BOOTSTRAP_SERVERS=$bootstrap"; return 0
  fi
  if answers; then
    echo "kafka: a broker not started by this script already answers on $bootstrap" >&2
    echo "KAFKA_BOOTSTRAP_SERVERS=$bootstrap"; return 0
  fi
  if pid=$(running_pid); then  # alive but not answering: a stuck start; replace it
    kill -9 "$pid" 2>/dev/null || true
  fi
  resolve_jars
  write_config
  [[ -f "$home/cluster.id" ]] || "${java_cmd[@]}" kafka.tools.StorageTool random-uuid > "$home/cluster.id"
  "${java_cmd[@]}" kafka.tools.StorageTool format -t "$(cat "$home/cluster.id")" \
    -c "$home/server-$port.properties" --ignore-formatted >/dev/null
  # setsid: the broker outlives this shell and make, and is not hit by the caller's Ctrl-C.
  setsid nohup "${java_cmd[@]}" kafka.Kafka "$home/server-$port.properties" >"$logfile" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-90}))
  until answers 2; do
    if ! running_pid >/dev/null; then
      echo "kafka: the broker exited during start-up; last lines of $logfile:" >&2
      tail -n 30 "$logfile" >&2; exit 1
    fi
    if (( SECONDS > deadline )); then
      echo "kafka: no metadata answer on $bootstrap within ${KAFKA_START_TIMEOUT:-90}s; see $logfile" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "kafka: started (pid $(cat "$pidfile")), log $logfile" >&2
  echo "KAFKA_BOOTSTRAP_SERVERS=$bootstrap"
}

stop() {
  local pid
  if ! pid=$(running_pid); then echo "kafka: not running" >&2; rm -f "$pidfile"; return 0; fi
  kill "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS > deadline )); then kill -9 "$pid" 2>/dev/null || true; fi
    sleep 0.2
  done
  rm -f "$pidfile"
  echo "kafka: stopped" >&2
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) answers && echo "KAFKA_BOOTSTRAP_SERVERS=$bootstrap" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
