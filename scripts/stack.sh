#!/usr/bin/env bash
# The native stack: PostgreSQL (wal_level=logical), Redis, Debezium Server, N cdcache replicas and nginx,
# all under one state folder, each on its own port. Used by `make restart` (folder .stack, nginx on 8080)
# and by the tests (a throwaway folder, every port free-picked).
#
#   stack.sh up   DIR   start or restart everything (idempotent; also from a stopped or half-started state)
#   stack.sh down DIR   stop everything
#   stack.sh stop DIR   stop only the parts named in PARTS (fault tests)
#   stack.sh logs DIR   show the recent logs of every component (FOLLOW=1 to follow)
#   stack.sh failover DIR       promote the streaming standby (STANDBY=1) to primary: stop Debezium, fence
#                               the old primary (immediate stop, as a crash), promote the standby, delete
#                               Debezium's offsets (they name the old primary's slot), start Debezium on the
#                               new primary (it creates a new slot); replicas keep running
#   stack.sh reset-source DIR   the operator's source reset: stop Debezium, drop the replication slot,
#                               delete Debezium's offsets, start Debezium (new slot at the current WAL
#                               position); replicas keep running
#
# Environment: REPLICAS (default 2), LB_PORT (default 8080; 0 = pick a free one), FRESH=1 (recreate the
# database), PARTS (default "pg redis debezium replicas nginx": what `up` starts), BUILD_DIR (build),
# STANDBY=1 (with pg: also a streaming standby of the primary, made with pg_basebackup -R under
# DIR/pg-standby, port `pg_standby` in DIR/ports.env; the replicas then connect with a multi-host conninfo,
# target_session_attrs=read-write, so that they follow a failover without a restart),
# PIPELINE_RT=1 (PostgreSQL, Redis and Debezium under SCHED_RR priority 1, root only: make bench uses
# it so that a load generator and hundreds of busy worker threads on the same two cores do not starve
# the CDC pipeline, as they could not on separate hosts; nice values do not help across the kernel's
# per-session autogroups).
#
# Ports: each part takes the port saved for it in DIR/ports.env if that is free, else the first free one
# from its base, skipping the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, where any
# program's outgoing connection may hold a port): PG_PORT_BASE 15432 (the standby's: PG_STANDBY_PORT_BASE,
# default PG_PORT_BASE), REDIS_PORT_BASE 16379, DBZ_HTTP_PORT_BASE 18088, REPLICA_PORT_BASE 8081. A base of
# 0 lets the kernel pick (the tests). A part that fails to bind (a port taken meanwhile) is started again
# on the next free port, up to BIND_RETRIES (default 2) times; a fixed LB_PORT is not moved.
# Everything listens on 127.0.0.1 only (nginx on LB_HOST, default 127.0.0.1).
# PG_MAX_SLOT_WAL_KEEP_SIZE (default 1GB; -1 = unlimited): max_slot_wal_keep_size of both clusters, so that
# a stopped Debezium cannot fill the disk with WAL held by its slot (past it, the slot is invalidated and
# needs a source reset).
# Redis: every step that needs its data waits until it has loaded its AOF (REDIS_LOAD_TIMEOUT, default
# 300 s); the offsets' DEL (FRESH=1, failover, reset-source) checks Redis's reply and that the keys are gone.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=${2:-}
usage() { echo "usage: [STANDBY=1] stack.sh up|down|stop|logs|failover|reset-source DIR" >&2; exit 2; }
[ -n "$cmd" ] && [ -n "$dir" ] || usage
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
REPLICAS=${REPLICAS:-2}
LB_PORT=${LB_PORT:-8080}
PARTS=${PARTS:-"pg redis debezium replicas nginx"}
BUILD_DIR=${BUILD_DIR:-$here/build}
CDCACHE=${CDCACHE:-$BUILD_DIR/cdcache}
SLOT=${DEBEZIUM_SLOT:-cdcache}
OFFSETS_KEY=metadata:debezium:offsets
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

say() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Outgoing connections take their local port from the kernel's ephemeral range; a server port inside it
# can be held by any program's connection at the moment the server binds. The fixed bases lie below the
# range (read here, at run time) and pick_port skips it. A base of 0 (the tests) lets the kernel pick.
EPH_LO=32768 EPH_HI=60999
read -r EPH_LO EPH_HI 2>/dev/null < /proc/sys/net/ipv4/ip_local_port_range || true
in_ephemeral() { [ "$1" -ge "$EPH_LO" ] && [ "$1" -le "$EPH_HI" ]; }
port_free() { # nothing listens on 127.0.0.1:PORT, and a server could bind it (no connection holds it either)
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || return 1
    python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT does not count
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1" 2>/dev/null
}
port_taken_by_other() { grep -s -v "^$1=" "$dir/ports.env" | cut -d= -f2 | grep -qx "$2"; }
pick_port() { # pick_port NAME BASE [FAILED]: the port saved for NAME if free, else a free one: from the
    # kernel if BASE is 0, else the first from BASE upwards outside the ephemeral range. With FAILED (a
    # port that could not be bound), the saved port is not tried and the search starts after FAILED.
    local name=$1 base=$2 failed=${3:-} saved p
    if [ -z "$failed" ]; then
        saved=$(grep -s "^$name=" "$dir/ports.env" | cut -d= -f2 || true)
        if [ -n "$saved" ] && port_free "$saved"; then
            if [ "$base" != 0 ] && in_ephemeral "$saved"; then
                say "note: $name keeps its saved port $saved, inside the ephemeral range $EPH_LO-$EPH_HI (delete its line in $dir/ports.env to move it)"
            fi
            echo "$saved"
            return
        fi
    fi
    if [ "$base" = 0 ]; then
        while :; do
            p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
            [ "$p" != "$failed" ] && ! port_taken_by_other "$name" "$p" && break
        done
        echo "$p"
        return
    fi
    p=$base
    # a retry goes on after the port that failed, unless that was a saved port outside the search
    if [ -n "$failed" ] && [ "$failed" -ge "$base" ] && ! in_ephemeral "$failed"; then p=$((failed + 1)); fi
    while :; do
        in_ephemeral "$p" && p=$((EPH_HI + 1))
        [ "$p" -le 65535 ] || die "no free port for $name from $base up, outside the ephemeral range $EPH_LO-$EPH_HI"
        port_free "$p" && ! port_taken_by_other "$name" "$p" && break
        p=$((p + 1))
    done
    echo "$p"
}
# A failed bind (a port taken between pick_port and the server's bind) is retried on the next free port.
BIND_RETRIES=${BIND_RETRIES:-2}
log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }
bind_failed() { # bind_failed LOG OFFSET: the log, past OFFSET bytes, reports a port already in use
    tail -c +"$(($2 + 1))" "$1" 2>/dev/null |
        grep -Eqi 'could not bind|could not create any TCP/IP sockets|Address already in use|already bound|seems to be in use|cannot listen on'
}
rcli() { # rcli PORT ARGS...: redis-cli on the stack's Redis (the one place to add credentials)
    local port=$1
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}
save_port() { touch "$dir/ports.env"; sed -i "/^$1=/d" "$dir/ports.env"; echo "$1=$2" >> "$dir/ports.env"; }
saved_port() { grep -s "^$1=" "$dir/ports.env" | cut -d= -f2; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || die "timed out after ${secs}s waiting for $what"
        sleep 0.2
    done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pid() { # stop_pid PIDFILE: TERM, then KILL after 10 s
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

# Prefix for the pipeline's commands (PIPELINE_RT). An array, not a function, so that `$!` of a
# backgrounded command is the command itself (what stop_pid kills). Children inherit the policy.
PIPE_SCHED=()
if [ "${PIPELINE_RT:-0}" = 1 ]; then PIPE_SCHED=(chrt --rr 1); fi

find_java() { # prints a java binary of version >= 21
    local cands=() j v
    [ -n "${JAVA_HOME:-}" ] && cands+=("$JAVA_HOME/bin/java")
    for j in /usr/lib/jvm/*/bin/java; do cands+=("$j"); done
    for j in "${cands[@]}"; do
        [ -x "$j" ] || continue
        v=$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
        [ -n "$v" ] && [ "${v%%.*}" -ge 21 ] 2>/dev/null && { echo "$j"; return 0; }
    done
    return 1
}

# ---------------------------------------------------------------- stop
stop_replicas() { for f in "$dir"/replica-*/cdcache.pid; do [ -e "$f" ] && stop_pid "$f"; done; return 0; }
stop_nginx() {
    if [ -f "$dir/nginx/nginx.pid" ]; then
        nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -s quit 2>/dev/null || true
        for _ in $(seq 1 50); do pid_alive "$dir/nginx/nginx.pid" || break; sleep 0.1; done
        stop_pid "$dir/nginx/nginx.pid"
    fi
}
stop_debezium() { stop_pid "$dir/debezium/debezium.pid"; }
stop_redis() {
    if [ -f "$dir/redis/redis.pid" ]; then
        rcli "$(saved_port redis)" shutdown nosave >/dev/null 2>&1 || true
        stop_pid "$dir/redis/redis.pid"
    fi
}
stop_pg() { # both clusters: the primary and, if there is one, the standby (or a fenced old primary)
    local d
    for d in "$dir/pg/data" "$dir/pg-standby/data"; do
        if [ -f "$d/postmaster.pid" ]; then
            runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true
        fi
    done
}
down() { # stops the parts named in $PARTS (all by default), front to back
    local p
    for p in replicas nginx debezium redis pg; do has_part "$p" && "stop_$p"; done
    return 0
}

# ---------------------------------------------------------------- start
# Two cluster folders, DIR/pg and DIR/pg-standby. DIR/pg.primary names the one that is the primary ("pg"
# unless a failover promoted the standby); the other is the standby, or the fenced old primary after a
# failover (rebuilt as a standby by the next `STANDBY=1 up`). ports.env: `pg` is the primary's port,
# `pg_standby` the other folder's.
primary_name() { cat "$dir/pg.primary" 2>/dev/null || echo pg; }
standby_name() { if [ "$(primary_name)" = pg ]; then echo pg-standby; else echo pg; fi; }
pg_opts() { # pg_opts PORT FOLDER: the server options both clusters run with
    echo "-c port=$1 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$2 \
            -c wal_level=logical -c max_wal_senders=10 -c max_replication_slots=10 \
            -c max_connections=300 -c fsync=${PG_FSYNC:-on} -c synchronous_commit=${PG_SYNC_COMMIT:-on} \
            -c max_slot_wal_keep_size=${PG_MAX_SLOT_WAL_KEEP_SIZE:-1GB}"
}
db_url() { echo "postgresql://postgres@127.0.0.1:$(saved_port pg)/cdcache"; }
replica_conninfo() { # with a standby: both hosts, libpq picks the one that accepts writes
    local sp
    sp=$(saved_port pg_standby)
    if [ -n "$sp" ]; then
        echo "postgresql://postgres@127.0.0.1:$(saved_port pg),127.0.0.1:$sp/cdcache?target_session_attrs=read-write"
    else
        db_url
    fi
}

start_pg() {
    local port fresh=0 pd
    if [ "${FRESH:-0}" = 1 ]; then # a new database: the standby and the roles go with the old one
        rm -rf "$dir/pg-standby/data" "$dir/pg.primary"
    fi
    pd="$dir/$(primary_name)"
    port=$(pick_port pg "${PG_PORT_BASE:-15432}")
    mkdir -p "$pd"
    chown postgres:postgres "$pd"
    chmod 755 "$dir"
    if [ "${FRESH:-0}" = 1 ] && [ -d "$pd/data" ]; then rm -rf "$pd/data"; fi
    if [ ! -s "$pd/data/PG_VERSION" ]; then
        rm -rf "$pd/data"
        runuser -u postgres -- "$PGBIN/initdb" -D "$pd/data" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 >"$pd/initdb.log" 2>&1 || die "initdb failed: see $pd/initdb.log"
        fresh=1
    fi
    local extra=""
    # WAL kept for a standby that was stopped with the stack (a physical slot would pin WAL forever
    # for a standby that never comes back)
    [ "${STANDBY:-0}" = 1 ] && extra="-c wal_keep_size=256MB"
    local tries=0 off
    while :; do
        off=$(log_size "$pd/postgres.log")
        "${PIPE_SCHED[@]}" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pd/data" -l "$pd/postgres.log" -w -t 60 start \
            -o "$(pg_opts "$port" "$pd") $extra" >/dev/null && break
        if [ $tries -lt "$BIND_RETRIES" ] && bind_failed "$pd/postgres.log" "$off"; then
            tries=$((tries + 1))
            say "PostgreSQL could not bind 127.0.0.1:$port (in use); retrying on the next free port"
            port=$(pick_port pg "${PG_PORT_BASE:-15432}" "$port")
            continue
        fi
        die "PostgreSQL did not start: see $pd/postgres.log"
    done
    save_port pg "$port"
    psql_c() { psql -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }
    if ! psql_c -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='cdcache'" | grep -q 1; then
        psql_c -d postgres -c "CREATE DATABASE cdcache" >/dev/null
        fresh=1
    fi
    # DIR/<cluster>/fresh: 1 while the offsets and streams of an older database may still be in Redis; set
    # for a new database, cleared only once reset_offsets_if_fresh has verified the reset (so that an
    # `up` that died before it retries it)
    if [ $fresh = 1 ] || [ ! -f "$pd/fresh" ]; then echo "$fresh" > "$pd/fresh"; fi
    DATABASE_URL="postgresql://postgres@127.0.0.1:$port/cdcache"
    CDCACHE_POSTGRES_CONNINFO="$DATABASE_URL" "$CDCACHE" migrate up --dir "$here/migrations" >"$pd/migrate.log" 2>&1 \
        < /dev/null || { cat "$pd/migrate.log" >&2; die "migrations failed"; }
    say "PostgreSQL on 127.0.0.1:$port (wal_level=logical)$([ $fresh = 1 ] && echo ', new database')"
    if [ "${STANDBY:-0}" = 1 ]; then
        start_standby "$fresh"
    else
        sed -i '/^pg_standby=/d' "$dir/ports.env"
    fi
}

start_standby() { # start_standby FRESH: a streaming standby of the primary (pg_basebackup -R)
    local fresh=$1 pport sd port
    pport=$(saved_port pg)
    sd="$dir/$(standby_name)"
    # replication over 127.0.0.1 (initdb --auth=trust allows it; added if an older cluster lacks it)
    if ! grep -Eq '^host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32' "$dir/$(primary_name)/data/pg_hba.conf"; then
        echo "host replication all 127.0.0.1/32 trust" >> "$dir/$(primary_name)/data/pg_hba.conf"
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/$(primary_name)/data" reload >/dev/null
    fi
    port=$(pick_port pg_standby "${PG_STANDBY_PORT_BASE:-${PG_PORT_BASE:-15432}}")
    mkdir -p "$sd"
    chown postgres:postgres "$sd"
    # a folder that is not a standby (a fenced old primary after a failover) or one of an older
    # database is made again from the primary
    if [ "$fresh" = 1 ] || [ ! -f "$sd/data/standby.signal" ]; then
        rm -rf "$sd/data"
        runuser -u postgres -- "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$sd/data" \
            -R -X stream -c fast >"$sd/basebackup.log" 2>&1 || die "pg_basebackup failed: see $sd/basebackup.log"
        say "standby made with pg_basebackup -R from 127.0.0.1:$pport into $sd/data"
    fi
    echo 0 > "$sd/fresh" # a copy of the primary: no reset pending if a failover promotes it
    # primary_conninfo on the command line wins over the one pg_basebackup wrote: the primary's port may change
    local tries=0 off
    while :; do
        off=$(log_size "$sd/postgres.log")
        "${PIPE_SCHED[@]}" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$sd/data" -l "$sd/postgres.log" -w -t 60 start \
            -o "$(pg_opts "$port" "$sd") -c primary_conninfo='host=127.0.0.1 port=$pport user=postgres application_name=standby'" \
            >/dev/null && break
        if [ $tries -lt "$BIND_RETRIES" ] && bind_failed "$sd/postgres.log" "$off"; then
            tries=$((tries + 1))
            say "the standby could not bind 127.0.0.1:$port (in use); retrying on the next free port"
            port=$(pick_port pg_standby "${PG_STANDBY_PORT_BASE:-${PG_PORT_BASE:-15432}}" "$port")
            continue
        fi
        die "the standby did not start: see $sd/postgres.log"
    done
    save_port pg_standby "$port"
    wait_for 60 "the standby to stream from the primary" sh -c "psql -X -h 127.0.0.1 -p $pport -U postgres -d postgres -tAc \
        \"SELECT 1 FROM pg_stat_replication WHERE application_name='standby' AND state='streaming'\" | grep -q 1"
    say "PostgreSQL standby on 127.0.0.1:$port (streaming from 127.0.0.1:$pport)"
}

start_redis() {
    local port tries=0 off pid
    mkdir -p "$dir/redis"
    if pid_alive "$dir/redis/redis.pid" && [ -n "$(saved_port redis)" ]; then
        port=$(saved_port redis)
    else
        port=$(pick_port redis "${REDIS_PORT_BASE:-16379}")
        while :; do
            cat > "$dir/redis/redis.conf" <<CONF
bind 127.0.0.1
protected-mode yes
port $port
dir $dir/redis
pidfile $dir/redis/redis.pid
logfile $dir/redis/redis.log
daemonize yes
appendonly yes
save ""
CONF
            off=$(log_size "$dir/redis/redis.log")
            rm -f "$dir/redis/redis.pid"
            "${PIPE_SCHED[@]}" redis-server "$dir/redis/redis.conf" || die "redis-server failed: see $dir/redis/redis.log"
            # daemonized: the child binds after the parent has returned. Up once the server on the port is
            # ours (its process_id is our pidfile's: a foreign server may hold the port); it may still be loading.
            local end=$((SECONDS + 20)) up=0
            while :; do
                pid=$(cat "$dir/redis/redis.pid" 2>/dev/null || true)
                if [ -n "$pid" ] && rcli "$port" INFO server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$pid"; then
                    up=1
                    break
                fi
                bind_failed "$dir/redis/redis.log" "$off" && break
                if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
                    tail -n 20 "$dir/redis/redis.log" >&2
                    die "Redis exited: see $dir/redis/redis.log"
                fi
                [ $SECONDS -lt $end ] || die "timed out after 20s waiting for Redis on 127.0.0.1:$port: see $dir/redis/redis.log"
                sleep 0.1
            done
            [ $up = 1 ] && break
            [ $tries -lt "$BIND_RETRIES" ] || die "Redis could not bind 127.0.0.1:$port: see $dir/redis/redis.log"
            tries=$((tries + 1))
            say "Redis could not bind 127.0.0.1:$port (in use); retrying on the next free port"
            port=$(pick_port redis "${REDIS_PORT_BASE:-16379}" "$port")
        done
    fi
    save_port redis "$port"
    redis_wait_loaded "$port"
    say "Redis on 127.0.0.1:$port"
}

redis_wait_loaded() { # redis_wait_loaded PORT: until Redis has loaded its AOF (it answers LOADING before)
    local port=$1 r="" end=$((SECONDS + ${REDIS_LOAD_TIMEOUT:-300}))
    while :; do
        r=$(rcli "$port" PING 2>&1 || true)
        if [ "$r" = PONG ] && rcli "$port" INFO persistence 2>/dev/null | tr -d '\r' | grep -qx 'loading:0'; then
            return 0
        fi
        [ $SECONDS -lt $end ] || die "Redis on 127.0.0.1:$port was not ready after ${REDIS_LOAD_TIMEOUT:-300}s (PING: $r)"
        sleep 0.2
    done
}

redis_del() { # redis_del WHAT KEY...: deletes the keys, checks Redis's reply, then checks that none is left.
    # redis-cli exits 0 on an error reply (LOADING, READONLY, ...): the reply itself must be read.
    local what=$1 port reply left
    shift
    port=$(saved_port redis)
    [ -n "$port" ] || die "$what: no Redis port in $dir/ports.env"
    redis_wait_loaded "$port"
    reply=$(rcli "$port" DEL "$@" 2>&1) || die "$what: redis-cli DEL $* on 127.0.0.1:$port failed: $reply"
    [[ $reply =~ ^[0-9]+$ ]] || die "$what: DEL $* on Redis 127.0.0.1:$port answered: $reply"
    left=$(rcli "$port" EXISTS "$@" 2>&1) || true
    [ "$left" = 0 ] || die "$what: after DEL, EXISTS $* on Redis 127.0.0.1:$port answers '$left' (expected 0)"
    echo "$reply"
}

reset_offsets_if_fresh() {
    # A new database means Debezium's stored offsets (in Redis) point into a WAL that no longer exists,
    # and the slot is gone: drop them so Debezium starts clean. Old stream entries describe rows of the
    # old database; drop those too.
    local f n
    f="$dir/$(primary_name)/fresh"
    if [ "$(cat "$f" 2>/dev/null || echo 0)" = 1 ]; then
        n=$(redis_del "new database: resetting Debezium's offsets" "$OFFSETS_KEY" cdcache.inventory.items \
            __debezium-heartbeat.cdcache)
        echo 0 > "$f"
        say "new database: Debezium offsets and old streams reset ($n keys deleted; verified gone: $OFFSETS_KEY, cdcache.inventory.items, __debezium-heartbeat.cdcache)"
    fi
}

start_debezium() {
    local dist java port d="$dir/debezium" t0
    dist=$("$here/scripts/debezium-fetch.sh")
    java=$(find_java) || die "Debezium Server $(cat "$here/debezium/VERSION") needs Java 21 or newer: none found in JAVA_HOME or /usr/lib/jvm (install a JDK 21+, e.g. Temurin, and set JAVA_HOME)"
    mkdir -p "$d/config"
    for f in run.sh lib lib_opt lib_metrics jmx connectors "$(cd "$dist" && ls debezium-server-*runner.jar)"; do
        ln -sfn "$dist/$f" "$d/$f"
    done
    cp "$here/debezium/application.properties" "$d/config/application.properties"
    port=$(pick_port debezium_http "${DBZ_HTTP_PORT_BASE:-18088}")
    local tries=0
    while :; do
        save_port debezium_http "$port"
        t0=$(date +%s%N)
        (
            cd "$d"
            export JAVA_HOME=${java%/bin/java}
            export JAVA_OPTS="${JAVA_OPTS:-} -Xms256m -Xmx1g --add-opens=java.base/java.lang=ALL-UNNAMED"
            export CDCACHE_REDIS_ADDRESS="127.0.0.1:$(saved_port redis)"
            export CDCACHE_PG_PORT="$(saved_port pg)" CDCACHE_DEBEZIUM_HTTP_PORT="$port"
            # 127.0.0.1 only: quarkus.http.host in application.properties; QUARKUS_HTTP_HOST would override
            # it, and run.sh would open JMX and the JMX exporter on all interfaces if these were set
            export CDCACHE_DEBEZIUM_HTTP_HOST=127.0.0.1
            unset QUARKUS_HTTP_HOST JMX_HOST JMX_PORT JMX_EXPORTER_PORT
            "${PIPE_SCHED[@]}" setsid ./run.sh >"$d/debezium.log" 2>&1 < /dev/null &
            echo $! > "$d/debezium.pid"
        )
        # Streaming has begun once the first heartbeat lands in Redis.
        local end=$((SECONDS + ${DEBEZIUM_START_TIMEOUT:-180}))
        local t0_ms=$((t0 / 1000000)) last up=0
        while :; do
            last=$(rcli "$(saved_port redis)" XREVRANGE __debezium-heartbeat.cdcache + - COUNT 1 2>/dev/null | head -n 1)
            if [ -n "$last" ] && [[ ${last%%-*} =~ ^[0-9]+$ ]] && [ "${last%%-*}" -gt "$t0_ms" ]; then up=1; break; fi
            pid_alive "$d/debezium.pid" || break
            [ $SECONDS -lt $end ] || { tail -n 30 "$d/debezium.log" >&2; die "Debezium Server did not stream within the timeout"; }
            sleep 0.2
        done
        [ $up = 1 ] && break
        if [ $tries -lt "$BIND_RETRIES" ] && bind_failed "$d/debezium.log" 0; then
            tries=$((tries + 1))
            say "Debezium Server could not bind its HTTP port 127.0.0.1:$port (in use); retrying on the next free port"
            port=$(pick_port debezium_http "${DBZ_HTTP_PORT_BASE:-18088}" "$port")
            continue
        fi
        tail -n 30 "$d/debezium.log" >&2
        die "Debezium Server exited: see $d/debezium.log"
    done
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf '%d.%d\n' $((ms / 1000)) $(((ms % 1000) / 100)) > "$d/startup_seconds"
    say "Debezium Server $(cat "$here/debezium/VERSION") streaming after $(cat "$d/startup_seconds")s (java: $java)"
}

write_replica_config() { # write_replica_config I PORT
    cat > "$dir/replica-$1/config.yaml" <<CONF
# generated by scripts/stack.sh
http:
  listen: "127.0.0.1:$2"
  threads: ${REPLICA_THREADS:-16}
postgres:
  conninfo: "$(replica_conninfo)"
  migrations_dir: "$here/migrations"
redis:
  url: "redis://127.0.0.1:$(saved_port redis)"
cdc:
  replica_id: "replica-$1"
  max_staleness_ms: ${MAX_STALENESS_MS:-5000}
log:
  level: ${LOG_LEVEL:-info}
CONF
}
launch_replica() { # launch_replica I
    setsid "$CDCACHE" serve --config "$dir/replica-$1/config.yaml" >"$dir/replica-$1/cdcache.log" 2>&1 < /dev/null &
    echo $! > "$dir/replica-$1/cdcache.pid"
}

start_replicas() {
    local i port urls=() tries end
    for i in $(seq 1 "$REPLICAS"); do
        mkdir -p "$dir/replica-$i"
        port=$(pick_port "replica$i" "${REPLICA_PORT_BASE:-8081}")
        save_port "replica$i" "$port"
        write_replica_config "$i" "$port"
        launch_replica "$i"
    done
    for i in $(seq 1 "$REPLICAS"); do
        port=$(saved_port "replica$i")
        tries=0
        end=$((SECONDS + 30))
        # up when it answers /health and is still running (a foreign server may answer on a port ours failed to bind)
        until curl -fsS --max-time 5 "http://127.0.0.1:$port/health" >/dev/null 2>&1 && pid_alive "$dir/replica-$i/cdcache.pid"; do
            if ! pid_alive "$dir/replica-$i/cdcache.pid"; then
                if [ $tries -lt "$BIND_RETRIES" ] && bind_failed "$dir/replica-$i/cdcache.log" 0; then
                    tries=$((tries + 1))
                    say "replica $i could not bind 127.0.0.1:$port (in use); retrying on the next free port"
                    port=$(pick_port "replica$i" "${REPLICA_PORT_BASE:-8081}" "$port")
                    save_port "replica$i" "$port"
                    write_replica_config "$i" "$port"
                    launch_replica "$i"
                    end=$((SECONDS + 30))
                    continue
                fi
                tail -n 20 "$dir/replica-$i/cdcache.log" >&2
                die "replica $i exited: see $dir/replica-$i/cdcache.log"
            fi
            [ $SECONDS -lt $end ] || die "timed out after 30s waiting for replica $i"
            sleep 0.2
        done
        wait_for 60 "replica $i to be ready" curl -fsS --max-time 5 "http://127.0.0.1:$port/ready"
        urls+=("http://127.0.0.1:$port")
    done
    REPLICA_URLS=$(IFS=,; echo "${urls[*]}")
    say "$REPLICAS replicas: $REPLICA_URLS"
}

start_nginx() {
    local port d="$dir/nginx" i
    mkdir -p "$d/tmp" "$d/logs"
    if [ "$LB_PORT" = 0 ]; then port=$(pick_port lb 0); else port=$LB_PORT; port_free "$port" || die "port $port is in use: stop what holds it, or set LB_PORT"; fi
    local tries=0
    while :; do
        save_port lb "$port"
        {
            echo "worker_processes ${NGINX_WORKERS:-2};"
            echo "pid $d/nginx.pid;"
            echo "error_log $d/logs/error.log warn;"
            echo "events { worker_connections 4096; }"
            echo "http {"
            echo "  access_log off;"
            echo "  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;"
            echo "  fastcgi_temp_path $d/tmp/fcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;"
            echo "  upstream cdcache {"
            for i in $(seq 1 "$REPLICAS"); do echo "    server 127.0.0.1:$(saved_port "replica$i") max_fails=3 fail_timeout=5s;"; done
            echo "    keepalive 64;"
            echo "  }"
            echo "  server {"
            echo "    listen ${LB_HOST:-127.0.0.1}:$port;"
            echo "    client_max_body_size 1m;"
            echo "    location / {"
            echo "      proxy_pass http://cdcache;"
            echo "      proxy_http_version 1.1;"
            echo "      proxy_set_header Connection \"\";"
            echo "      proxy_set_header Host \$host;"
            echo "      proxy_next_upstream error timeout;"
            echo "    }"
            echo "  }"
            echo "}"
        } > "$d/nginx.conf"
        chmod -R a+rwx "$d/tmp"
        nginx -c "$d/nginx.conf" -p "$d" 2>"$d/logs/start.err" && break
        cat "$d/logs/start.err" >&2
        # a free-picked port (LB_PORT=0) taken meanwhile is retried; a fixed LB_PORT is the operator's choice
        if [ "$LB_PORT" = 0 ] && [ $tries -lt "$BIND_RETRIES" ] && bind_failed "$d/logs/start.err" 0; then
            tries=$((tries + 1))
            say "nginx could not bind 127.0.0.1:$port (in use); retrying on another free port"
            port=$(pick_port lb 0 "$port")
            continue
        fi
        die "nginx failed: see $d/logs/error.log"
    done
    wait_for 20 "nginx" curl -fsS --max-time 5 "http://127.0.0.1:$port/health"
    CDCACHE_URL="http://127.0.0.1:$port"
    say "nginx load balancer on $CDCACHE_URL"
}

applied_total() { # applied_total URL: the replica's count of applied change events
    curl -fsS --max-time 5 "$1/metrics" | awk '$1=="cdcache_cdc_events_applied_total"{print $2}'
}

probe_pipeline() {
    # A change made in PostgreSQL must reach every replica through Debezium and Redis. The probe row uses
    # an id far above the sequence (ids the API hands out are unaffected) and is deleted at once.
    local i before=() url n ok
    IFS=, read -ra urls <<< "$REPLICA_URLS"
    for url in "${urls[@]}"; do before+=("$(applied_total "$url")"); done
    psql -X -q -h 127.0.0.1 -p "$(saved_port pg)" -U postgres -d cdcache -c \
        "INSERT INTO inventory.items (id, name, description, price) VALUES (4503599627370496, 'probe', 'pipeline probe', 0);
         DELETE FROM inventory.items WHERE id = 4503599627370496;" >/dev/null
    local end=$((SECONDS + 60))
    while :; do
        ok=1
        for i in "${!urls[@]}"; do
            n=$(applied_total "${urls[$i]}")
            [ "${n:-0}" -ge $((before[i] + 2)) ] || ok=0
        done
        [ $ok = 1 ] && break
        [ $SECONDS -lt $end ] || die "a change did not reach every replica within 60s"
        sleep 0.1
    done
    say "pipeline carries changes end to end (PostgreSQL -> Debezium -> Redis -> ${#urls[@]} replicas)"
}

write_env() {
    cat > "$dir/stack.env" <<ENV
# generated by scripts/stack.sh; source it: . $dir/stack.env
CDCACHE_URL=${CDCACHE_URL:-}
REPLICA_URLS=${REPLICA_URLS:-}
DATABASE_URL=$(db_url)
REDIS_URL=redis://127.0.0.1:$(saved_port redis)
STACK_DIR=$dir
PG_PORT=$(saved_port pg)
REDIS_PORT=$(saved_port redis)
DEBEZIUM_STARTUP_SECONDS=$(cat "$dir/debezium/startup_seconds" 2>/dev/null || echo "")
ENV
    if [ -n "$(saved_port pg_standby)" ]; then echo "PG_STANDBY_PORT=$(saved_port pg_standby)" >> "$dir/stack.env"; fi
    return 0
}

up() {
    [ -x "$CDCACHE" ] || die "$CDCACHE is missing: run make build"
    down
    keep_env_urls
    has_part pg && start_pg
    has_part redis && start_redis
    has_part redis && has_part pg && reset_offsets_if_fresh
    has_part debezium && start_debezium
    has_part replicas && start_replicas
    has_part nginx && start_nginx
    write_env
    if has_part debezium && has_part replicas; then probe_pipeline; fi
}

# ---------------------------------------------------------------- failover, source reset
keep_env_urls() { # parts not restarted keep their entries in stack.env
    CDCACHE_URL="" REPLICA_URLS=""
    if [ -f "$dir/stack.env" ]; then
        CDCACHE_URL=$(sed -n 's/^CDCACHE_URL=//p' "$dir/stack.env")
        REPLICA_URLS=$(sed -n 's/^REPLICA_URLS=//p' "$dir/stack.env")
    fi
}
replicas_running() {
    local f n=0
    for f in "$dir"/replica-*/cdcache.pid; do [ -e "$f" ] || continue; pid_alive "$f" || return 1; n=$((n + 1)); done
    [ $n -gt 0 ] && [ -n "$REPLICA_URLS" ]
}
pg_q() { # pg_q PORT SQL
    psql -X -q -h 127.0.0.1 -p "$1" -U postgres -d cdcache -v ON_ERROR_STOP=1 -tAc "$2"
}

failover() {
    local old new oldname newname
    old=$(saved_port pg) new=$(saved_port pg_standby)
    oldname=$(primary_name) newname=$(standby_name)
    [ -n "$new" ] && [ -f "$dir/$newname/data/standby.signal" ] && [ -f "$dir/$newname/data/postmaster.pid" ] ||
        die "no running standby in $dir/$newname: start the stack with STANDBY=1"
    keep_env_urls
    stop_debezium
    say "failover: Debezium stopped"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/$oldname/data" -m immediate -w stop >/dev/null 2>&1 || true
    say "failover: old primary fenced (immediate stop) on 127.0.0.1:$old ($dir/$oldname)"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/$newname/data" -w -t 60 promote >/dev/null ||
        die "pg_ctl promote failed: see $dir/$newname/postgres.log"
    wait_for 60 "the promoted standby to accept writes" sh -c \
        "psql -X -h 127.0.0.1 -p $new -U postgres -d cdcache -tAc 'SELECT pg_is_in_recovery(), txid_current()' | grep -q '^f|'"
    echo "$newname" > "$dir/pg.primary"
    save_port pg "$new"
    save_port pg_standby "$old"
    say "failover: standby promoted, now the primary on 127.0.0.1:$new ($dir/$newname); the old primary's folder is fenced (rebuilt as a standby by STANDBY=1 up)"
    redis_del "failover: deleting Debezium's offsets" "$OFFSETS_KEY" >/dev/null
    say "failover: Debezium's offsets deleted ($OFFSETS_KEY: they named the old primary's slot; verified gone)"
    start_debezium
    say "failover: Debezium streaming from the new primary (slot $SLOT: $(pg_q "$new" "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name='$SLOT'"))"
    write_env
    if replicas_running; then probe_pipeline; fi
    say "failover done: DATABASE_URL=$(db_url); replicas not restarted (multi-host conninfo, target_session_attrs=read-write)"
}

reset_source() {
    local port
    port=$(saved_port pg)
    keep_env_urls
    stop_debezium
    say "reset-source: Debezium stopped"
    wait_for 30 "slot $SLOT to be released" sh -c \
        "psql -X -h 127.0.0.1 -p $port -U postgres -d cdcache -tAc \"SELECT count(*) FROM pg_replication_slots WHERE slot_name='$SLOT' AND active\" | grep -qx 0"
    if [ "$(pg_q "$port" "SELECT count(*) FROM pg_replication_slots WHERE slot_name='$SLOT'")" = 1 ]; then
        say "reset-source: dropping slot $SLOT (confirmed_flush_lsn $(pg_q "$port" "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name='$SLOT'"))"
        pg_q "$port" "SELECT pg_drop_replication_slot('$SLOT')" >/dev/null
    else
        say "reset-source: no slot $SLOT to drop"
    fi
    redis_del "reset-source: deleting Debezium's offsets" "$OFFSETS_KEY" >/dev/null
    say "reset-source: Debezium's offsets deleted ($OFFSETS_KEY; verified gone)"
    start_debezium
    say "reset-source: new slot $SLOT at $(pg_q "$port" "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name='$SLOT'")"
    write_env
    if replicas_running; then probe_pipeline; fi
    say "reset-source done; replicas not restarted"
}

logs() {
    local files=()
    for f in "$dir"/pg/postgres.log "$dir"/pg-standby/postgres.log "$dir"/redis/redis.log "$dir"/debezium/debezium.log \
             "$dir"/replica-*/cdcache.log "$dir"/nginx/logs/error.log; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || { say "no logs in $dir"; return 0; }
    if [ "${FOLLOW:-0}" = 1 ]; then tail -n 20 -F "${files[@]}"; else tail -n "${LINES_PER_LOG:-30}" "${files[@]}"; fi
}

case "$cmd" in
    up) up ;;
    down) PARTS="pg redis debezium replicas nginx" down; say "stopped ($dir)" ;;
    stop) down ;;
    logs) logs ;;
    failover) failover ;;
    reset-source) reset_source ;;
    *) usage ;;
esac
