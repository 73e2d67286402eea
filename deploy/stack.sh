#!/usr/bin/env bash
# Local services for Driftline: Apache Kafka (KRaft, single node) and Redis.
#
#   deploy/stack.sh up [kafka|redis]     start what is not already reachable (idempotent)
#   deploy/stack.sh down [kafka|redis]   stop what this script started (Redis shuts down cleanly, AOF kept)
#   deploy/stack.sh status               show each service and who runs it
#
# Naming one service acts on it alone (the fault tests restart their own
# Kafka or Redis this way, in their own DRIFTLINE_STACK_DIR and ports).
#
# Services already reachable at DRIFTLINE_KAFKA_BOOTSTRAP (default
# localhost:9092) and DRIFTLINE_REDIS_URL (default redis://localhost:6379/0)
# are reused and never stopped by `down`. What is missing is installed:
# the Kafka broker jars are resolved from Maven Central (deploy/kafka/pom.xml)
# into DRIFTLINE_CACHE (default ~/.cache/driftline), redis-server comes from
# Debian's package, and Debian's prometheus (with promtool) and chromium are
# installed for the tests, which start their own Prometheus and load the report
# in chromium. Data, logs and pid files live in DRIFTLINE_STACK_DIR
# (default .stack/ in the repository).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
stack_dir="${DRIFTLINE_STACK_DIR:-$repo/.stack}"
cache_dir="${DRIFTLINE_CACHE:-$HOME/.cache/driftline}"
kafka_bootstrap="${DRIFTLINE_KAFKA_BOOTSTRAP:-localhost:9092}"
redis_url="${DRIFTLINE_REDIS_URL:-redis://localhost:6379/0}"
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")"
kafka_libs="$cache_dir/kafka-$kafka_version/libs"

kafka_host="${kafka_bootstrap%%,*}"; kafka_host="${kafka_host%:*}"
kafka_port="${kafka_bootstrap##*:}"
controller_port=$((kafka_port + 1))
redis_hostport="${redis_url#redis://}"; redis_hostport="${redis_hostport#*@}"; redis_hostport="${redis_hostport%%/*}"
redis_host="${redis_hostport%:*}"; redis_port="${redis_hostport##*:}"
[ "$redis_port" = "$redis_hostport" ] && redis_port=6379

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

reachable() {  # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for() {  # name host port seconds logfile
    local i
    for ((i = 0; i < $4 * 2; i++)); do
        reachable "$2" "$3" && return 0
        sleep 0.5
    done
    printf 'stack: error: %s did not open %s:%s within %ss; last lines of %s:\n' "$1" "$2" "$3" "$4" "$5" >&2
    tail -n 20 "$5" >&2 || true
    exit 1
}

pid_alive() {  # pidfile
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

apt_install() {  # package
    command -v apt-get >/dev/null || die "$1 is missing and this is not a Debian system: install $1 yourself"
    [ "$(id -u)" = 0 ] || die "$1 is missing: run 'sudo apt-get install -y $1', then 'make stack-up' again"
    say "installing $1 from Debian's packages"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null || die "apt-get could not install $1"
    fi
}

ensure_kafka_jars() {
    [ -f "$kafka_libs/kafka_2.13-$kafka_version.jar" ] && return 0
    command -v java >/dev/null || die "java is missing: Kafka $kafka_version needs Java 17 or newer (apt-get install openjdk-17-jre-headless)"
    command -v mvn >/dev/null || apt_install maven KAFKA
    say "resolving Kafka $kafka_version broker jars from Maven Central into $kafka_libs"
    mkdir -p "$kafka_libs.partial"
    (cd "$here/kafka" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$kafka_libs.partial") || die "Maven could not resolve the Kafka jars (see the output above)"
    rm -rf "$kafka_libs" && mv "$kafka_libs.partial" "$kafka_libs"
}

kafka_up() {
    if reachable "$kafka_host" "$kafka_port"; then
        say "kafka: reusing the broker at $kafka_bootstrap"
        return 0
    fi
    ensure_kafka_jars
    local dir="$stack_dir/kafka"
    mkdir -p "$dir"
    sed -e "s|@KAFKA_HOST@|$kafka_host|g" -e "s|@KAFKA_PORT@|$kafka_port|g" \
        -e "s|@CONTROLLER_PORT@|$controller_port|g" -e "s|@DATA_DIR@|$dir/data|g" \
        "$here/kafka/server.properties.in" >"$dir/server.properties"
    local cp="$kafka_libs/*"
    if [ ! -f "$dir/data/meta.properties" ]; then
        local cluster_id
        cluster_id="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null)"
        java -Dlog4j2.configurationFile="$here/kafka/log4j2.yaml" -cp "$cp" kafka.tools.StorageTool format \
            -t "$cluster_id" -c "$dir/server.properties" --standalone >"$dir/format.log" 2>&1 \
            || { cat "$dir/format.log" >&2; die "formatting the Kafka storage in $dir/data failed"; }
    fi
    say "kafka: starting $kafka_version (KRaft) on $kafka_bootstrap, logs in $dir/kafka.log"
    nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$here/kafka/log4j2.yaml" \
        -cp "$cp" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
    echo $! >"$dir/kafka.pid"
    wait_for kafka "$kafka_host" "$kafka_port" 90 "$dir/kafka.log"
}

redis_up() {
    if reachable "$redis_host" "$redis_port"; then
        say "redis: reusing the server at $redis_url"
        return 0
    fi
    command -v redis-server >/dev/null || apt_install redis-server REDIS
    local dir="$stack_dir/redis"
    mkdir -p "$dir"
    say "redis: starting on $redis_host:$redis_port, logs in $dir/redis.log"
    redis-server --bind "$redis_host" --port "$redis_port" --dir "$dir" \
        --appendonly yes --appendfsync everysec --save "" --enable-debug-command local \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    wait_for redis "$redis_host" "$redis_port" 20 "$dir/redis.log"
}

stop_pidfile() {  # name pidfile
    if pid_alive "$2"; then
        say "$1: stopping (pid $(cat "$2"))"
        kill "$(cat "$2")" 2>/dev/null || true
        local i
        for ((i = 0; i < 60; i++)); do pid_alive "$2" || break; sleep 0.5; done
        pid_alive "$2" && kill -9 "$(cat "$2")" 2>/dev/null || true
    fi
    rm -f "$2"
}

status_line() {  # name host port pidfile
    local owner="not started by this script"
    pid_alive "$4" && owner="pid $(cat "$4"), started by this script"
    if reachable "$2" "$3"; then
        say "$1: up at $2:$3 ($owner)"
    else
        say "$1: DOWN at $2:$3 (start it with 'make stack-up')"
        return 1
    fi
}

prometheus_installed() {
    # Tests start their own Prometheus on loopback; the stack only makes sure it is installed.
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        return 0
    fi
    apt_install prometheus PROMETHEUS
}

chromium_installed() {
    # The report's browser test loads it in Debian's headless chromium (driven by Playwright, no browser download).
    [ -x /usr/bin/chromium ] || apt_install chromium
}

service="${2:-all}"
case "$service" in all|kafka|redis) ;; *) die "unknown service '$service' (kafka or redis)" ;; esac
case "${1:-}" in
    up)
        if [ "$service" != redis ]; then kafka_up; fi
        if [ "$service" != kafka ]; then redis_up; fi
        if [ "$service" = all ]; then prometheus_installed; chromium_installed; fi
        ;;
    down)
        if [ "$service" != redis ]; then stop_pidfile kafka "$stack_dir/kafka/kafka.pid"; fi
        if [ "$service" != kafka ]; then stop_pidfile redis "$stack_dir/redis/redis.pid"; fi
        ;;
    status)
        rc=0
        status_line kafka "$kafka_host" "$kafka_port" "$stack_dir/kafka/kafka.pid" || rc=1
        status_line redis "$redis_host" "$redis_port" "$stack_dir/redis/redis.pid" || rc=1
        exit $rc
        ;;
    *)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
