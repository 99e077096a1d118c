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
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

say() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_taken_by_other() { grep -s -v "^$1=" "$dir/ports.env" | cut -d= -f2 | grep -qx "$2"; }
pick_port() { # pick_port NAME BASE: reuses the port saved for NAME if free, else the first free from BASE
    local name=$1 base=$2 saved p
    saved=$(grep -s "^$name=" "$dir/ports.env" | cut -d= -f2 || true)
    if [ -n "$saved" ] && port_free "$saved"; then echo "$saved"; return; fi
    if [ "$base" = 0 ]; then
        while :; do
            p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
            port_taken_by_other "$name" "$p" || break
        done
        echo "$p"
        return
    fi
    p=$base
    while ! port_free "$p" || port_taken_by_other "$name" "$p"; do p=$((p + 1)); done
    echo "$p"
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
        redis-cli -p "$(saved_port redis)" shutdown nosave >/dev/null 2>&1 || true
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
            -c max_connections=300 -c fsync=${PG_FSYNC:-on} -c synchronous_commit=${PG_SYNC_COMMIT:-on}"
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
    port=$(pick_port pg "${PG_PORT_BASE:-54320}")
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
    "${PIPE_SCHED[@]}" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pd/data" -l "$pd/postgres.log" -w -t 60 start \
        -o "$(pg_opts "$port" "$pd") $extra" \
        >/dev/null || die "PostgreSQL did not start: see $pd/postgres.log"
    save_port pg "$port"
    psql_c() { psql -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }
    if ! psql_c -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='cdcache'" | grep -q 1; then
        psql_c -d postgres -c "CREATE DATABASE cdcache" >/dev/null
        fresh=1
    fi
    echo "$fresh" > "$pd/fresh"
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
    port=$(pick_port pg_standby "${PG_STANDBY_PORT_BASE:-${PG_PORT_BASE:-54320}}")
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
    # primary_conninfo on the command line wins over the one pg_basebackup wrote: the primary's port may change
    "${PIPE_SCHED[@]}" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$sd/data" -l "$sd/postgres.log" -w -t 60 start \
        -o "$(pg_opts "$port" "$sd") -c primary_conninfo='host=127.0.0.1 port=$pport user=postgres application_name=standby'" \
        >/dev/null || die "the standby did not start: see $sd/postgres.log"
    save_port pg_standby "$port"
    wait_for 60 "the standby to stream from the primary" sh -c "psql -X -h 127.0.0.1 -p $pport -U postgres -d postgres -tAc \
        \"SELECT 1 FROM pg_stat_replication WHERE application_name='standby' AND state='streaming'\" | grep -q 1"
    say "PostgreSQL standby on 127.0.0.1:$port (streaming from 127.0.0.1:$pport)"
}

start_redis() {
    local port
    port=$(pick_port redis "${REDIS_PORT_BASE:-63790}")
    mkdir -p "$dir/redis"
    if ! pid_alive "$dir/redis/redis.pid"; then
        cat > "$dir/redis/redis.conf" <<CONF
bind 127.0.0.1
port $port
dir $dir/redis
pidfile $dir/redis/redis.pid
logfile $dir/redis/redis.log
daemonize yes
appendonly yes
save ""
CONF
        "${PIPE_SCHED[@]}" redis-server "$dir/redis/redis.conf" || die "redis-server failed: see $dir/redis/redis.log"
        wait_for 20 "Redis" redis-cli -p "$port" ping
    fi
    save_port redis "$port"
    say "Redis on 127.0.0.1:$port"
}

reset_offsets_if_fresh() {
    # A new database means Debezium's stored offsets (in Redis) point into a WAL that no longer exists,
    # and the slot is gone: drop them so Debezium starts clean. Old stream entries describe rows of the
    # old database; drop those too.
    if [ "$(cat "$dir/$(primary_name)/fresh" 2>/dev/null || echo 0)" = 1 ]; then
        redis-cli -p "$(saved_port redis)" DEL metadata:debezium:offsets cdcache.inventory.items \
            __debezium-heartbeat.cdcache >/dev/null
        say "new database: Debezium offsets and old streams reset"
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
    port=$(pick_port debezium_http "${DBZ_HTTP_PORT_BASE:-8088}")
    save_port debezium_http "$port"
    t0=$(date +%s%N)
    (
        cd "$d"
        export JAVA_HOME=${java%/bin/java}
        export JAVA_OPTS="${JAVA_OPTS:-} -Xms256m -Xmx1g --add-opens=java.base/java.lang=ALL-UNNAMED"
        export CDCACHE_REDIS_ADDRESS="127.0.0.1:$(saved_port redis)"
        export CDCACHE_PG_PORT="$(saved_port pg)" CDCACHE_DEBEZIUM_HTTP_PORT="$port"
        "${PIPE_SCHED[@]}" setsid ./run.sh >"$d/debezium.log" 2>&1 < /dev/null &
        echo $! > "$d/debezium.pid"
    )
    # Streaming has begun once the first heartbeat lands in Redis.
    local end=$((SECONDS + ${DEBEZIUM_START_TIMEOUT:-180}))
    local t0_ms=$((t0 / 1000000)) last
    while :; do
        last=$(redis-cli -p "$(saved_port redis)" XREVRANGE __debezium-heartbeat.cdcache + - COUNT 1 2>/dev/null | head -n 1)
        [ -n "$last" ] && [ "${last%%-*}" -gt "$t0_ms" ] && break
        pid_alive "$d/debezium.pid" || { tail -n 30 "$d/debezium.log" >&2; die "Debezium Server exited: see $d/debezium.log"; }
        [ $SECONDS -lt $end ] || { tail -n 30 "$d/debezium.log" >&2; die "Debezium Server did not stream within the timeout"; }
        sleep 0.2
    done
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf '%d.%d\n' $((ms / 1000)) $(((ms % 1000) / 100)) > "$d/startup_seconds"
    say "Debezium Server $(cat "$here/debezium/VERSION") streaming after $(cat "$d/startup_seconds")s (java: $java)"
}

start_replicas() {
    local i port urls=() cfg
    for i in $(seq 1 "$REPLICAS"); do
        mkdir -p "$dir/replica-$i"
        port=$(pick_port "replica$i" "${REPLICA_PORT_BASE:-8081}")
        save_port "replica$i" "$port"
        cfg="$dir/replica-$i/config.yaml"
        cat > "$cfg" <<CONF
# generated by scripts/stack.sh
http:
  listen: "127.0.0.1:$port"
  threads: ${REPLICA_THREADS:-16}
postgres:
  conninfo: "$(replica_conninfo)"
  migrations_dir: "$here/migrations"
redis:
  url: "redis://127.0.0.1:$(saved_port redis)"
cdc:
  replica_id: "replica-$i"
  max_staleness_ms: ${MAX_STALENESS_MS:-5000}
log:
  level: ${LOG_LEVEL:-info}
CONF
        setsid "$CDCACHE" serve --config "$cfg" >"$dir/replica-$i/cdcache.log" 2>&1 < /dev/null &
        echo $! > "$dir/replica-$i/cdcache.pid"
        urls+=("http://127.0.0.1:$port")
    done
    for i in $(seq 1 "$REPLICAS"); do
        port=$(saved_port "replica$i")
        wait_for 30 "replica $i" curl -fsS "http://127.0.0.1:$port/health"
        wait_for 60 "replica $i to be ready" curl -fsS "http://127.0.0.1:$port/ready"
    done
    REPLICA_URLS=$(IFS=,; echo "${urls[*]}")
    say "$REPLICAS replicas: $REPLICA_URLS"
}

start_nginx() {
    local port d="$dir/nginx" i
    mkdir -p "$d/tmp" "$d/logs"
    if [ "$LB_PORT" = 0 ]; then port=$(pick_port lb 0); else port=$LB_PORT; port_free "$port" || die "port $port is in use: stop what holds it, or set LB_PORT"; fi
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
    nginx -c "$d/nginx.conf" -p "$d" || die "nginx failed: see $d/logs/error.log"
    wait_for 20 "nginx" curl -fsS "http://127.0.0.1:$port/health"
    CDCACHE_URL="http://127.0.0.1:$port"
    say "nginx load balancer on $CDCACHE_URL"
}

applied_total() { # applied_total URL: the replica's count of applied change events
    curl -fsS "$1/metrics" | awk '$1=="cdcache_cdc_events_applied_total"{print $2}'
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
SLOT=${DEBEZIUM_SLOT:-cdcache}
OFFSETS_KEY=metadata:debezium:offsets
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
    redis-cli -p "$(saved_port redis)" DEL "$OFFSETS_KEY" >/dev/null
    say "failover: Debezium's offsets deleted ($OFFSETS_KEY: they named the old primary's slot)"
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
    redis-cli -p "$(saved_port redis)" DEL "$OFFSETS_KEY" >/dev/null
    say "reset-source: Debezium's offsets deleted ($OFFSETS_KEY)"
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
