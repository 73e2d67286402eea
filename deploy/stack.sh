#!/usr/bin/env bash
# Local services for Driftline: Apache Kafka (KRaft, single node), Redis, and on request a
# Redis Cluster.
#
#   deploy/stack.sh up [kafka|redis|redis-cluster]     start what is not already reachable (idempotent)
#   deploy/stack.sh down [kafka|redis|redis-cluster]   stop what this script started in DRIFTLINE_STACK_DIR
#   deploy/stack.sh status                             show each service and who runs it
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
# (default .stack/ in the repository). deploy/README.md describes every mode.
#
# Secure mode, DRIFTLINE_STACK_SECURE=1 (`make stack-up SECURE=1`): a self-signed CA and
# certificates, and random passwords (unless given), in $DRIFTLINE_STACK_DIR/secure/;
#   Kafka on DRIFTLINE_KAFKA_BOOTSTRAP (default localhost:9192): SASL_SSL with SCRAM-SHA-512
#     (user DRIFTLINE_KAFKA_SASL_USERNAME, default driftline, password DRIFTLINE_KAFKA_SASL_PASSWORD
#     or _FILE), mutual TLS on port + 2, the controller on port + 1;
#   Redis on DRIFTLINE_REDIS_URL's port (default 6380): password for `default` (admin), ACL user
#     `driftline` (or the URL's user and password) for Driftline, TLS on port + 1.
# `up` prints the DRIFTLINE_* settings to use (never a password: the *_PASSWORD_FILE settings
# name files) and writes them to secure/kafka.env, secure/kafka-mtls.env and secure/redis.env.
#
# Redis Cluster, `up redis-cluster` or DRIFTLINE_STACK_REDIS_CLUSTER=1 with `up`
# (`make stack-up REDIS_CLUSTER=1`): masters at DRIFTLINE_REDIS_CLUSTER_NODES (default
# 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002; each also uses its port + 10000 for the cluster bus),
# DRIFTLINE_STACK_REDIS_CLUSTER_REPLICAS (default 0) replicas per master on the ports after the
# last master's; `up` waits for cluster_state:ok and prints DRIFTLINE_REDIS_CLUSTER_NODES=...
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
stack_dir="${DRIFTLINE_STACK_DIR:-$repo/.stack}"
cache_dir="${DRIFTLINE_CACHE:-$HOME/.cache/driftline}"
case "${DRIFTLINE_STACK_SECURE:-}" in 1|true|yes|on) secure=1 ;; *) secure="" ;; esac
if [ -n "$secure" ]; then
    kafka_bootstrap="${DRIFTLINE_KAFKA_BOOTSTRAP:-localhost:9192}"
    redis_url="${DRIFTLINE_REDIS_URL:-redis://localhost:6380/0}"
else
    kafka_bootstrap="${DRIFTLINE_KAFKA_BOOTSTRAP:-localhost:9092}"
    redis_url="${DRIFTLINE_REDIS_URL:-redis://localhost:6379/0}"
fi
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")"
kafka_libs="$cache_dir/kafka-$kafka_version/libs"
secure_dir="$stack_dir/secure"

kafka_host="${kafka_bootstrap%%,*}"; kafka_host="${kafka_host%:*}"
kafka_port="${kafka_bootstrap##*:}"
controller_port=$((kafka_port + 1))
mtls_port=$((kafka_port + 2))
redis_userinfo=""
redis_hostport="${redis_url#*://}"
case "$redis_hostport" in *@*) redis_userinfo="${redis_hostport%%@*}" ;; esac
redis_hostport="${redis_hostport#*@}"; redis_hostport="${redis_hostport%%/*}"
redis_host="${redis_hostport%:*}"; redis_port="${redis_hostport##*:}"
[ "$redis_port" = "$redis_hostport" ] && redis_port=6379
redis_tls_port=$((redis_port + 1))

cluster_nodes="${DRIFTLINE_REDIS_CLUSTER_NODES:-127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002}"
cluster_replicas="${DRIFTLINE_STACK_REDIS_CLUSTER_REPLICAS:-0}"
cluster_dir="$stack_dir/redis-cluster"

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

reachable() {  # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for() {  # name host port seconds logfile [pidfile: give up as soon as that process has ended]
    local i
    for ((i = 0; i < $4 * 2; i++)); do
        reachable "$2" "$3" && return 0
        if [ -n "${6:-}" ] && ! pid_alive "$6"; then
            printf 'stack: error: %s ended before it opened %s:%s; last lines of %s:\n' "$1" "$2" "$3" "$5" >&2
            tail -n 20 "$5" >&2 || true
            exit 1
        fi
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

# --- secure mode: CA, certificates, passwords --------------------------------------------------

secret_file() {  # name [given value]: the file holding a secret, written once (random unless given)
    local file="$secure_dir/$1"
    # the password goes into properties, a SCRAM spec and redis.conf unquoted: letters, digits, . _ ~ - only
    [[ -z "${2:-}" || "$2" =~ ^[A-Za-z0-9._~-]+$ ]] || die "a given $1 may hold only letters, digits and . _ ~ -"
    if [ ! -s "$file" ]; then
        (umask 077; if [ -n "${2:-}" ]; then printf '%s' "$2"; else openssl rand -hex 24 | tr -d '\n'; fi >"$file")
    elif [ -n "${2:-}" ] && [ "$(cat "$file")" != "$2" ]; then
        die "$stack_dir was set up with another $1; use a new DRIFTLINE_STACK_DIR for another password"
    fi
    printf '%s' "$file"
}

sign_cert() {  # name subject extensions: a key and a certificate signed by the local CA
    (umask 077; openssl req -new -newkey rsa:2048 -nodes -subj "$2" -keyout "$secure_dir/$1.key" \
        -out "$secure_dir/$1.csr" 2>/dev/null)
    printf '%b' "$3" >"$secure_dir/$1.ext"
    openssl x509 -req -in "$secure_dir/$1.csr" -CA "$secure_dir/ca.pem" -CAkey "$secure_dir/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 -extfile "$secure_dir/$1.ext" \
        -out "$secure_dir/$1.pem" 2>/dev/null || die "openssl could not sign the $1 certificate"
    rm -f "$secure_dir/$1.csr" "$secure_dir/$1.ext"
}

ensure_certificates() {
    command -v openssl >/dev/null || apt_install openssl
    mkdir -p "$secure_dir" && chmod 700 "$secure_dir"
    [ -f "$secure_dir/client.pem" ] && return 0
    say "secure: making a local CA and certificates in $secure_dir"
    (umask 077; openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 -subj "/CN=Driftline local CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$secure_dir/ca.key" -out "$secure_dir/ca.pem" 2>/dev/null) || die "openssl could not make the CA"
    chmod 644 "$secure_dir/ca.pem"
    local san="DNS:localhost,IP:127.0.0.1" h
    for h in "$kafka_host" "$redis_host"; do
        if [[ "$h" =~ ^[0-9.]+$ ]]; then san="$san,IP:$h"; else san="$san,DNS:$h"; fi
    done
    sign_cert server "/CN=$kafka_host" \
        "basicConstraints=CA:FALSE\nsubjectAltName=$san\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
    sign_cert client "/CN=driftline" \
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
}

write_public() {  # file: stdin into a file others may read (settings, never secrets)
    (umask 022; cat >"$1")
}

print_settings() {  # env file: show the settings to export (they name password files, never passwords)
    sed 's/^/    /' "$1"
}

ours_or_free() {  # pidfile host:port name: a secure service is reused only where this script started it
    if pid_alive "$1"; then
        [ "$(cat "$(dirname "$1")/address" 2>/dev/null)" = "$2" ] \
            || die "the secure $3 of $stack_dir runs at $(cat "$(dirname "$1")/address" 2>/dev/null), not $2; stop it first or use another DRIFTLINE_STACK_DIR"
    elif reachable "${2%:*}" "${2##*:}"; then
        die "something this script did not start in secure mode listens on $2; give the secure $3 ports of its own"
    fi
}

# --- Kafka -------------------------------------------------------------------------------------

kafka_dir() { if [ -n "$secure" ]; then echo "$stack_dir/kafka-secure"; else echo "$stack_dir/kafka"; fi; }

write_kafka_properties() {  # dir [admin password file] [keystore password file]
    sed -e "s|@KAFKA_HOST@|$kafka_host|g" -e "s|@KAFKA_PORT@|$kafka_port|g" \
        -e "s|@CONTROLLER_PORT@|$controller_port|g" -e "s|@DATA_DIR@|$1/data|g" \
        "$here/kafka/server.properties.in" >"$1/server.properties"
    [ -n "$secure" ] || return 0
    (umask 077
     grep -v -E '^(listeners|advertised\.listeners|listener\.security\.protocol\.map)=' "$1/server.properties" \
         >"$1/server.properties.tmp"
     sed -e "s|@KAFKA_HOST@|$kafka_host|g" -e "s|@KAFKA_PORT@|$kafka_port|g" \
         -e "s|@CONTROLLER_PORT@|$controller_port|g" -e "s|@MTLS_PORT@|$mtls_port|g" \
         -e "s|@SECURE_DIR@|$secure_dir|g" -e "s|@ADMIN_PASSWORD@|$(cat "$2")|g" \
         -e "s|@KEYSTORE_PASSWORD@|$(cat "$3")|g" "$here/kafka/secure.properties.in" >>"$1/server.properties.tmp")
    mv "$1/server.properties.tmp" "$1/server.properties"
}

kafka_secure_setup() {  # sets kafka_user, kafka_password_file, admin_password_file, keystore_password_file
    ensure_certificates
    local given="${DRIFTLINE_KAFKA_SASL_PASSWORD:-}"
    if [ -z "$given" ] && [ -n "${DRIFTLINE_KAFKA_SASL_PASSWORD_FILE:-}" ]; then
        given="$(cat "$DRIFTLINE_KAFKA_SASL_PASSWORD_FILE")" || die "cannot read DRIFTLINE_KAFKA_SASL_PASSWORD_FILE"
    fi
    kafka_user="${DRIFTLINE_KAFKA_SASL_USERNAME:-driftline}"
    [ "$kafka_user" != admin ] || die "the Kafka user 'admin' is the broker's own; choose another DRIFTLINE_KAFKA_SASL_USERNAME"
    kafka_password_file="$(secret_file kafka-password "$given")"
    admin_password_file="$(secret_file kafka-admin-password)"
    keystore_password_file="$(secret_file kafka-keystore-password)"
    if [ ! -f "$secure_dir/broker.p12" ]; then
        (umask 077; openssl pkcs12 -export -in "$secure_dir/server.pem" -inkey "$secure_dir/server.key" \
            -certfile "$secure_dir/ca.pem" -name broker -out "$secure_dir/broker.p12" \
            -passout "file:$keystore_password_file") || die "openssl could not write the broker keystore"
    fi
    write_public "$secure_dir/kafka.env" <<EOF
DRIFTLINE_KAFKA_BOOTSTRAP=$kafka_host:$kafka_port
DRIFTLINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL
DRIFTLINE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
DRIFTLINE_KAFKA_SASL_USERNAME=$kafka_user
DRIFTLINE_KAFKA_SASL_PASSWORD_FILE=$kafka_password_file
DRIFTLINE_KAFKA_SSL_CAFILE=$secure_dir/ca.pem
EOF
    write_public "$secure_dir/kafka-mtls.env" <<EOF
DRIFTLINE_KAFKA_BOOTSTRAP=$kafka_host:$mtls_port
DRIFTLINE_KAFKA_SECURITY_PROTOCOL=SSL
DRIFTLINE_KAFKA_SSL_CAFILE=$secure_dir/ca.pem
DRIFTLINE_KAFKA_SSL_CERTFILE=$secure_dir/client.pem
DRIFTLINE_KAFKA_SSL_KEYFILE=$secure_dir/client.key
EOF
}

kafka_secure_report() {
    say "kafka: SASL_SSL (SCRAM-SHA-512, user $kafka_user) on $kafka_host:$kafka_port; settings, also in $secure_dir/kafka.env:"
    print_settings "$secure_dir/kafka.env"
    say "kafka: mutual TLS (client certificate) on $kafka_host:$mtls_port; settings, also in $secure_dir/kafka-mtls.env:"
    print_settings "$secure_dir/kafka-mtls.env"
}

kafka_up() {
    local dir; dir="$(kafka_dir)"
    [ -z "$secure" ] || ours_or_free "$dir/kafka.pid" "$kafka_host:$kafka_port" kafka
    if reachable "$kafka_host" "$kafka_port"; then
        if [ -z "$secure" ]; then
            say "kafka: reusing the broker at $kafka_bootstrap"
            return 0
        fi
        say "kafka: reusing the secure broker this script started at $kafka_bootstrap"
        kafka_secure_setup
        kafka_secure_report
        return 0
    fi
    ensure_kafka_jars
    ! reachable "$kafka_host" "$controller_port" || die "the controller port $kafka_host:$controller_port (bootstrap port + 1) is in use"
    [ -z "$secure" ] || ! reachable "$kafka_host" "$mtls_port" \
        || die "the mutual-TLS port $kafka_host:$mtls_port (bootstrap port + 2) is in use"
    mkdir -p "$dir"
    local scram=()
    if [ -n "$secure" ]; then
        kafka_secure_setup
        scram=(--add-scram "SCRAM-SHA-512=[name=$kafka_user,password=$(cat "$kafka_password_file")]"
               --add-scram "SCRAM-SHA-512=[name=admin,password=$(cat "$admin_password_file")]")
    fi
    write_kafka_properties "$dir" "${admin_password_file:-}" "${keystore_password_file:-}"
    local cp="$kafka_libs/*"
    if [ ! -f "$dir/data/meta.properties" ]; then
        local cluster_id
        cluster_id="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null)"
        java -Dlog4j2.configurationFile="$here/kafka/log4j2.yaml" -cp "$cp" kafka.tools.StorageTool format \
            -t "$cluster_id" -c "$dir/server.properties" --standalone ${scram[@]+"${scram[@]}"} >"$dir/format.log" 2>&1 \
            || { redact <"$dir/format.log" >&2; die "formatting the Kafka storage in $dir/data failed"; }
    fi
    echo "$kafka_host:$kafka_port" >"$dir/address"
    say "kafka: starting $kafka_version (KRaft${secure:+, secure}) on $kafka_bootstrap, logs in $dir/kafka.log"
    nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$here/kafka/log4j2.yaml" \
        -cp "$cp" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
    echo $! >"$dir/kafka.pid"
    wait_for kafka "$kafka_host" "$kafka_port" 90 "$dir/kafka.log" "$dir/kafka.pid"
    if [ -n "$secure" ]; then
        wait_for kafka "$kafka_host" "$mtls_port" 30 "$dir/kafka.log" "$dir/kafka.pid"
        kafka_secure_report
    fi
}

redact() {  # stdin with every secret of this stack replaced by ***
    local args=() f
    for f in "$secure_dir"/*-password; do
        [ -s "$f" ] && args+=(-e "s|$(cat "$f")|***|g")
    done
    if [ ${#args[@]} -gt 0 ]; then sed "${args[@]}"; else cat; fi
}

# --- Redis -------------------------------------------------------------------------------------

redis_secure_config() {  # dir: writes $dir/redis.conf (0600) and the settings to use
    ensure_certificates
    local user="${redis_userinfo%%:*}" given=""
    case "$redis_userinfo" in *:*) given="${redis_userinfo#*:}" ;; esac
    [ -n "$user" ] && [ "$user" != default ] || user=driftline
    redis_user="$user"
    redis_password_file="$(secret_file redis-password "$given")"
    local admin_file; admin_file="$(secret_file redis-admin-password)"
    # Driftline's user: everything but @dangerous (FLUSHALL, KEYS, CONFIG, DEBUG, SHUTDOWN, ACL, ...),
    # with INFO given back (Driftline reads it); DEBUG, for the fault tests, is the admin's (`default`).
    (umask 077; cat >"$1/redis.conf" <<EOF
bind $redis_host
port $redis_port
tls-port $redis_tls_port
tls-cert-file $secure_dir/server.pem
tls-key-file $secure_dir/server.key
tls-ca-cert-file $secure_dir/ca.pem
tls-auth-clients optional
requirepass $(cat "$admin_file")
user $user on >$(cat "$redis_password_file") ~* &* +@all -@dangerous +info
dir $1
appendonly yes
appendfsync everysec
save ""
enable-debug-command local
daemonize yes
pidfile $1/redis.pid
logfile $1/redis.log
EOF
    )
    write_public "$secure_dir/redis.env" <<EOF
DRIFTLINE_REDIS_URL=redis://$user@$redis_host:$redis_port/0
DRIFTLINE_REDIS_PASSWORD_FILE=$redis_password_file
EOF
    write_public "$secure_dir/redis-tls.env" <<EOF
DRIFTLINE_REDIS_URL=rediss://$user@$redis_host:$redis_tls_port/0?ssl_ca_certs=$secure_dir/ca.pem
DRIFTLINE_REDIS_PASSWORD_FILE=$redis_password_file
EOF
}

redis_secure_report() {
    say "redis: ACL user $redis_user on $redis_host:$redis_port (admin: user default, password in $secure_dir/redis-admin-password); settings, also in $secure_dir/redis.env:"
    print_settings "$secure_dir/redis.env"
    say "redis: TLS on $redis_host:$redis_tls_port; settings, also in $secure_dir/redis-tls.env:"
    print_settings "$secure_dir/redis-tls.env"
}

redis_up() {
    local dir="$stack_dir/redis"
    [ -z "$secure" ] || dir="$stack_dir/redis-secure"
    [ -z "$secure" ] || ours_or_free "$dir/redis.pid" "$redis_host:$redis_port" redis
    if reachable "$redis_host" "$redis_port"; then
        if [ -z "$secure" ]; then
            say "redis: reusing the server at $redis_url"
            return 0
        fi
        say "redis: reusing the secure server this script started at $redis_host:$redis_port"
        redis_secure_config "$dir"
        redis_secure_report
        return 0
    fi
    command -v redis-server >/dev/null || apt_install redis-server REDIS
    mkdir -p "$dir"
    if [ -n "$secure" ]; then
        redis_secure_config "$dir"
        echo "$redis_host:$redis_port" >"$dir/address"
        say "redis: starting (secure) on $redis_host:$redis_port and TLS on $redis_tls_port, logs in $dir/redis.log"
        redis-server "$dir/redis.conf"  # a file: the passwords stay out of the process list
        wait_for redis "$redis_host" "$redis_port" 20 "$dir/redis.log"
        wait_for redis "$redis_host" "$redis_tls_port" 20 "$dir/redis.log"
        redis_secure_report
        return 0
    fi
    say "redis: starting on $redis_host:$redis_port, logs in $dir/redis.log"
    redis-server --bind "$redis_host" --port "$redis_port" --dir "$dir" \
        --appendonly yes --appendfsync everysec --save "" --enable-debug-command local \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    wait_for redis "$redis_host" "$redis_port" 20 "$dir/redis.log"
}

# --- Redis Cluster -----------------------------------------------------------------------------

cluster_all_nodes() {  # the masters of DRIFTLINE_REDIS_CLUSTER_NODES, then the replicas' host:port
    local nodes=() n last host
    IFS=',' read -r -a nodes <<<"$cluster_nodes"
    printf '%s\n' "${nodes[@]}"
    last="${nodes[${#nodes[@]} - 1]}"; host="${last%:*}"
    for ((n = 1; n <= ${#nodes[@]} * cluster_replicas; n++)); do
        printf '%s:%s\n' "$host" $((${last##*:} + n))
    done
}

cluster_info() {  # host port field
    redis-cli -h "$1" -p "$2" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$3://p"
}

redis_cluster_up() {
    command -v redis-server >/dev/null || apt_install redis-server REDIS
    local nodes=() node host port started=0 replication
    mapfile -t nodes < <(cluster_all_nodes)
    [ "${#nodes[@]}" -ge 3 ] || die "a Redis Cluster needs at least three masters in DRIFTLINE_REDIS_CLUSTER_NODES"
    for node in "${nodes[@]}"; do
        host="${node%:*}"; port="${node##*:}"
        if reachable "$host" "$port"; then continue; fi
        mkdir -p "$cluster_dir/$port"
        redis-server --bind "$host" --port "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 3000 --dir "$cluster_dir/$port" --appendonly yes --appendfsync everysec \
            --save "" --enable-debug-command local --daemonize yes --pidfile "$cluster_dir/$port/redis.pid" \
            --logfile "$cluster_dir/$port/redis.log"
        started=$((started + 1))
    done
    for node in "${nodes[@]}"; do
        wait_for "redis-cluster node" "${node%:*}" "${node##*:}" 20 "$cluster_dir/${node##*:}/redis.log"
    done
    host="${nodes[0]%:*}"; port="${nodes[0]##*:}"
    if [ "$(cluster_info "$host" "$port" cluster_slots_assigned)" = 0 ]; then
        say "redis-cluster: creating a cluster of ${#nodes[@]} nodes ($cluster_replicas replicas per master)"
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$cluster_replicas" --cluster-yes \
            >"$cluster_dir/create.log" 2>&1 || { tail -n 20 "$cluster_dir/create.log" >&2; die "redis-cli --cluster create failed"; }
    elif [ "$started" = 0 ]; then
        say "redis-cluster: reusing the cluster at $cluster_nodes"
    fi
    local i ok
    for ((i = 0; i < 60; i++)); do
        ok=1
        for node in "${nodes[@]}"; do
            [ "$(cluster_info "${node%:*}" "${node##*:}" cluster_state)" = ok ] || { ok=""; break; }
        done
        # replicas show as masters until CLUSTER REPLICATE has spread through the cluster
        [ -z "$ok" ] || [ "$(redis-cli -h "$host" -p "$port" cluster nodes 2>/dev/null | grep -c ' slave ')" -ge \
            $(( (${#nodes[@]} / (cluster_replicas + 1)) * cluster_replicas )) ] || ok=""
        # and a replica takes over its master's slots only once it has synced with it
        if [ -n "$ok" ] && [ "$cluster_replicas" -gt 0 ]; then
            for node in "${nodes[@]}"; do
                replication=$(redis-cli -h "${node%:*}" -p "${node##*:}" info replication 2>/dev/null | tr -d '\r')
                grep -qx 'role:slave' <<< "$replication" || continue
                grep -qx 'master_link_status:up' <<< "$replication" || { ok=""; break; }
            done
        fi
        [ -n "$ok" ] && break
        sleep 0.5
    done
    [ -n "$ok" ] || die "the Redis Cluster at $cluster_nodes did not reach cluster_state:ok within 30s (see $cluster_dir)"
    say "redis-cluster: up (cluster_state:ok), ${#nodes[@]} nodes, data and logs in $cluster_dir; settings:"
    printf '    DRIFTLINE_REDIS_CLUSTER_NODES=%s\n' "$cluster_nodes"
}

redis_cluster_down() {
    local pidfile
    for pidfile in "$cluster_dir"/*/redis.pid; do
        [ -e "$pidfile" ] || continue
        stop_pidfile "redis-cluster node $(basename "$(dirname "$pidfile")")" "$pidfile"
    done
}

# --- every service -----------------------------------------------------------------------------

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

case "${DRIFTLINE_STACK_REDIS_CLUSTER:-}" in 1|true|yes|on) with_cluster=1 ;; *) with_cluster="" ;; esac
service="${2:-all}"
case "$service" in all|kafka|redis|redis-cluster) ;; *) die "unknown service '$service' (kafka, redis or redis-cluster)" ;; esac
case "${1:-}" in
    up)
        if [ "$service" = all ] || [ "$service" = kafka ]; then kafka_up; fi
        if [ "$service" = all ] || [ "$service" = redis ]; then redis_up; fi
        if [ "$service" = redis-cluster ] || { [ "$service" = all ] && [ -n "$with_cluster" ]; }; then
            redis_cluster_up
        fi
        if [ "$service" = all ]; then prometheus_installed; chromium_installed; fi
        ;;
    down)  # whatever this script started in $stack_dir, in either mode
        if [ "$service" = all ] || [ "$service" = kafka ]; then
            stop_pidfile kafka "$stack_dir/kafka/kafka.pid"
            stop_pidfile "kafka (secure)" "$stack_dir/kafka-secure/kafka.pid"
        fi
        if [ "$service" = all ] || [ "$service" = redis ]; then
            stop_pidfile redis "$stack_dir/redis/redis.pid"
            stop_pidfile "redis (secure)" "$stack_dir/redis-secure/redis.pid"
        fi
        if [ "$service" = all ] || [ "$service" = redis-cluster ]; then redis_cluster_down; fi
        ;;
    status)
        rc=0
        status_line "kafka${secure:+ (secure)}" "$kafka_host" "$kafka_port" "$(kafka_dir)/kafka.pid" || rc=1
        status_line "redis${secure:+ (secure)}" "$redis_host" "$redis_port" \
            "$stack_dir/redis${secure:+-secure}/redis.pid" || rc=1
        if [ -n "$with_cluster" ] || compgen -G "$cluster_dir/*/redis.pid" >/dev/null; then
            while read -r node; do
                status_line "redis-cluster node" "${node%:*}" "${node##*:}" "$cluster_dir/${node##*:}/redis.pid" || rc=1
            done < <(cluster_all_nodes)
        fi
        exit $rc
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'
        exit 2
        ;;
esac
