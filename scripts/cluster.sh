#!/usr/bin/env bash
# A real local fnbox cluster on one machine: three fnbox nodes, each in its own network namespace with
# its own dockerd (runc + runsc), sharing one PostgreSQL and a three-server NATS JetStream cluster.
#
#   scripts/cluster.sh up | down | status
#   scripts/cluster.sh kill-node I | stop-node I | start-node I     (I = 1..3)
#   scripts/cluster.sh kill-nats I | start-nats I
#   scripts/cluster.sh kill-dockerd I | start-dockerd I
#   scripts/cluster.sh restart-pg | stop-pg | start-pg
#
# Layout (host side of the cluster network is the bridge; PostgreSQL and NATS listen on its address):
#
#   host:  bridge $NAME-br  $SUBNET.1/24   PostgreSQL :$PG_PORT, NATS i :$NATS_PORT+i-1 (routes
#          :$ROUTE_PORT+i-1, monitoring :$MON_PORT+i-1), registry proxy (tinyproxy) :$PROXY_PORT
#   netns $NAME-node$i: veth $NAME-n$i $SUBNET.1$i/24 (host end $NAME-h$i in the bridge), lo up,
#          dockerd on CLUSTER_DIR/node$i/docker.sock, fnbox on http://$SUBNET.1$i:$NODE_PORT
#
# The namespaces have no route out; the nodes' dependency builds (pip, npm) reach PyPI and the npm
# registry through the proxy: each node gets HTTPS_PROXY/HTTP_PROXY (and https_proxy/http_proxy) =
# http://$SUBNET.1:$PROXY_PORT and NO_PROXY/no_proxy = the cluster subnet and localhost; the rest of its
# environment (the host's TLS trust: SSL_CERT_FILE, PIP_CERT, NODE_EXTRA_CA_CERTS, ...) is up's. The
# proxy runs as nobody, listens on the bridge address only, serves the cluster subnet only, tunnels
# (CONNECT) to port 443 only and refuses plain http:// requests. An HTTPS_PROXY in up's own
# environment becomes its upstream.
#
# Everything lives under CLUSTER_DIR (default target/cluster):
#   env                      the settings `up` used (later subcommands read them from here)
#   urls                     the nodes' API URLs, one per line;  store_url, nats_urls: what nodes get
#   pids/{pg,nats1..3,dockerd1..3,node1..3,proxy}.pid
#   pg.log  nats$i.log  dockerd$i.log  node$i.log  proxy.log
#   proxy/{tinyproxy.conf,filter}
#   pg/data  pg/run (Unix socket)  nats$i/{nats.conf,js/}  images/ (docker save tarball + .ids, by image ids)
#   node$i/{daemon.json,docker.sock,docker-data/,docker-exec/,data/,args}
#
# Environment knobs (only read by `up`; afterwards CLUSTER_DIR/env wins, so `down` needs only CLUSTER_DIR):
#   CLUSTER_DIR=DIR          state directory (default target/cluster)
#   CLUSTER_NAME=fnbox       prefix of the bridge, namespace and veth names (at most 10 characters)
#   CLUSTER_SUBNET=10.213.0  the /24 of the cluster network (host .1, nodes .11 .12 .13)
#   CLUSTER_PG_PORT=25432 CLUSTER_NATS_PORT=24222 CLUSTER_ROUTE_PORT=26222 CLUSTER_MON_PORT=28222
#   CLUSTER_NODE_PORT=8080 CLUSTER_PROXY_PORT=23128
#                            (all bound on the cluster's own addresses, so two clusters with different
#                            names and subnets can share these numbers)
#   CLUSTER_PG_USER=fnbox-pg the unprivileged system user PostgreSQL runs as (created when missing)
#   FNBOX_BIN=PATH           fnbox binary (default target/release/fnbox, built when missing)
#   FNBOX_NODE_ARGS="..."    extra arguments for every `fnbox serve` (e.g. "--prewarm 0")
#   FNBOX_DAEMON_JSON=PATH   the main dockerd's config whose runtimes the nodes reuse (/etc/docker/daemon.json)
#   FNBOX_MAIN_DOCKER_HOST   the main dockerd the images come from (unix:///var/run/docker.sock)
#
# Security: PostgreSQL trusts every connection from the cluster network and its own socket (no
# password), NATS has no auth and fnbox runs with --insecure-open. All of it is reachable only from this
# host and its namespaces: a local test cluster, not a deployment. (Sandboxes have no network at all;
# the proxy is for the nodes' package managers.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N=3
IMAGES=(fnbox-python:latest fnbox-node:latest)
PG_BIN=/usr/lib/postgresql/15/bin
DOCKER=/usr/bin/docker

say() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() {
    printf '==> ERROR: %s\n' "$*" >&2
    exit 1
}
now_s() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN{printf "%.1f", b-a}'; }

# ---------------------------------------------------------------------------------------------------
# settings

CLUSTER_DIR=${CLUSTER_DIR:-$ROOT/target/cluster}
mkdir -p "$CLUSTER_DIR"
CLUSTER_DIR=$(cd "$CLUSTER_DIR" && pwd)
ENV_FILE=$CLUSTER_DIR/env
PIDS=$CLUSTER_DIR/pids

load_settings() {
    if [[ -f $ENV_FILE ]]; then
        # shellcheck source=/dev/null
        source "$ENV_FILE"
        local k v
        # (an env file from before the proxy existed has no PROXY_PORT)
        PROXY_PORT=${PROXY_PORT:-${CLUSTER_PROXY_PORT:-23128}}
        for k in NAME SUBNET PG_PORT NATS_PORT ROUTE_PORT MON_PORT NODE_PORT PROXY_PORT PG_USER; do
            v="CLUSTER_$k"
            if [[ -n ${!v:-} && ${!v} != "${!k}" ]]; then
                warn "$v=${!v} ignored: $CLUSTER_DIR was set up with $k=${!k} (run down first to change it)"
            fi
        done
        return
    fi
    NAME=${CLUSTER_NAME:-fnbox}
    SUBNET=${CLUSTER_SUBNET:-10.213.0}
    PG_PORT=${CLUSTER_PG_PORT:-25432}
    NATS_PORT=${CLUSTER_NATS_PORT:-24222}
    ROUTE_PORT=${CLUSTER_ROUTE_PORT:-26222}
    MON_PORT=${CLUSTER_MON_PORT:-28222}
    NODE_PORT=${CLUSTER_NODE_PORT:-8080}
    PROXY_PORT=${CLUSTER_PROXY_PORT:-23128}
    PG_USER=${CLUSTER_PG_USER:-fnbox-pg}
    [[ $NAME =~ ^[a-z][a-z0-9]{0,9}$ ]] || die "CLUSTER_NAME must be 1-10 lowercase letters/digits (interface names are at most 15 characters)"
    [[ $SUBNET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "CLUSTER_SUBNET must be the first three octets of a /24, e.g. 10.213.0"
}

save_settings() {
    [[ -f $ENV_FILE ]] && return
    cat >"$ENV_FILE" <<EOF
# written by scripts/cluster.sh up; removed by down
NAME=$NAME
SUBNET=$SUBNET
PG_PORT=$PG_PORT
NATS_PORT=$NATS_PORT
ROUTE_PORT=$ROUTE_PORT
MON_PORT=$MON_PORT
NODE_PORT=$NODE_PORT
PROXY_PORT=$PROXY_PORT
PG_USER=$PG_USER
EOF
}

derive() {
    BR=$NAME-br
    HOST_IP=$SUBNET.1
    OWNER="fnbox-cluster $CLUSTER_DIR" # written to the bridge's and veths' ifalias
    STORE_URL="postgres://fnbox@$HOST_IP:$PG_PORT/fnbox"
    local i urls=()
    for ((i = 1; i <= N; i++)); do urls+=("nats://$HOST_IP:$((NATS_PORT + i - 1))"); done
    NATS_URLS=$(
        IFS=,
        echo "${urls[*]}"
    )
    FNBOX_BIN=${FNBOX_BIN:-$ROOT/target/release/fnbox}
    DAEMON_JSON=${FNBOX_DAEMON_JSON:-/etc/docker/daemon.json}
    MAIN_DOCKER_HOST=${FNBOX_MAIN_DOCKER_HOST:-unix:///var/run/docker.sock}
    PROXY_URL="http://$HOST_IP:$PROXY_PORT"
}
ns() { echo "$NAME-node$1"; }
node_ip() { echo "$SUBNET.1$1"; }
node_url() { echo "http://$(node_ip "$1"):$NODE_PORT"; }
docker_sock() { echo "$CLUSTER_DIR/node$1/docker.sock"; }
nats_mon() { echo "http://$HOST_IP:$((MON_PORT + $1 - 1))"; }

check_index() { # $1 = what, $2 = index
    [[ ${2:-} =~ ^[1-9]$ ]] && (($2 <= N)) || die "usage: $0 $1 I (I = 1..$N)"
}

# ---------------------------------------------------------------------------------------------------
# processes: every one we start is recorded in pids/NAME.pid; "alive" also checks the command name, so a
# recycled pid is never taken for ours.

pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }
# A zombie counts as dead: daemons whose starter exited belong to pid 1, which may reap them late.
alive() { # $1 = record name, $2 = expected /proc/PID/comm
    local pid stat
    pid=$(pid_of "$1")
    [[ -n $pid && -d /proc/$pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}
# Starts "$@" detached (own session, stdio to $2), records its pid and waits until it has exec'd $3.
spawn() { # $1 = record name, $2 = log, $3 = expected comm, $4... = command
    local rec=$1 log=$2 comm=$3 pid i
    shift 3
    mkdir -p "$PIDS"
    printf '\n==== %s cluster.sh starting %s\n' "$(date -Is)" "$rec" >>"$log"
    # not a process-group leader (no job control in scripts), so setsid does not fork: $! is the process
    # 9>&-: the daemon must not inherit the lock on CLUSTER_DIR/.lock (it would hold it for life)
    setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$PIDS/$rec.pid"
    for ((i = 0; i < 50; i++)); do
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] && return 0
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$rec did not start (log: $log)"
}
# SIGTERM, wait up to $3 s, then SIGKILL and wait up to 10 s more.
stop_pid() { # $1 = record name, $2 = comm, $3 = grace seconds
    local rec=$1 comm=$2 grace=$3 pid i
    if ! alive "$rec" "$comm"; then
        rm -f "$PIDS/$rec.pid"
        return 0
    fi
    pid=$(pid_of "$rec")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        alive "$rec" "$comm" || break
        sleep 0.1
    done
    if alive "$rec" "$comm"; then
        warn "$rec (pid $pid) still running after ${grace} s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            alive "$rec" "$comm" || break
            sleep 0.1
        done
        alive "$rec" "$comm" && die "$rec (pid $pid) did not die"
    fi
    rm -f "$PIDS/$rec.pid"
}

# curl with short bounds; only ever to the cluster's own addresses
http_ok() { curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------------
# prerequisites

# Runs "$@" (an apt-get install) with services' start at install refused: tinyproxy's package would
# otherwise start a system-wide proxy on all addresses. An existing policy-rc.d is left as it is.
no_service_starts() {
    local rc=0
    if [[ -e /usr/sbin/policy-rc.d ]]; then
        env "$@" || rc=$?
    else
        printf '#!/bin/sh\n# scripts/cluster.sh: no service starts during its apt-get install\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        env "$@" || rc=$?
        rm -f /usr/sbin/policy-rc.d
    fi
    return "$rc"
}

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, dockerd)"; }

step_packages() {
    local missing=() cmd
    command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
    command -v tinyproxy >/dev/null 2>&1 || missing+=(tinyproxy)
    for cmd in curl:curl jq:jq nsenter:util-linux ip:iproute2; do
        command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd#*:}")
    done
    [[ -x $DOCKER ]] || missing+=(docker.io)
    if ((${#missing[@]})); then
        say "packages: installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        no_service_starts DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    [[ -x $PG_BIN/postgres ]] || die "PostgreSQL 15 server binaries not found in $PG_BIN (apt-get install postgresql-15)"
    say "packages: nats-server $(nats-server --version 2>&1 | awk '{print $NF}'), $(tinyproxy -v 2>&1 | head -n1), PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $(dockerd --version | cut -d, -f1)"
}

step_binary() {
    if [[ -x $FNBOX_BIN ]]; then
        return
    fi
    [[ $FNBOX_BIN == "$ROOT/target/release/fnbox" ]] || die "FNBOX_BIN=$FNBOX_BIN does not exist"
    say "fnbox binary: building (cargo build --release --bin fnbox)"
    (cd "$ROOT" && cargo build --release --bin fnbox)
}

# ---------------------------------------------------------------------------------------------------
# network: one bridge, a namespace + veth per node. Ownership is the interfaces' ifalias.

ifalias() { cat "/sys/class/net/$1/ifalias" 2>/dev/null || true; }

step_network() {
    local i n h addr other
    if [[ -d /sys/class/net/$BR ]]; then
        [[ $(ifalias "$BR") == "$OWNER" ]] ||
            die "bridge $BR exists but belongs to '$(ifalias "$BR")' (another cluster? choose CLUSTER_NAME/CLUSTER_SUBNET)"
    else
        other=$(ip -o -4 addr show | awk -v s="$SUBNET." 'index($4, s) == 1 {print $2 " " $4}' | head -n1)
        [[ -z $other ]] || die "subnet $SUBNET.0/24 already in use ($other); choose CLUSTER_SUBNET"
        ip link add "$BR" type bridge
        ip link set dev "$BR" alias "$OWNER"
    fi
    ip addr replace "$HOST_IP/24" dev "$BR"
    ip link set "$BR" up
    for ((i = 1; i <= N; i++)); do
        n=$(ns "$i") h=$NAME-h$i
        [[ -e /var/run/netns/$n ]] || ip netns add "$n"
        if [[ ! -d /sys/class/net/$h ]]; then
            ip link add "$h" type veth peer name "$NAME-n$i" netns "$n"
            ip link set dev "$h" alias "$OWNER"
        fi
        ip link set "$h" master "$BR" up
        ip -n "$n" link set lo up
        ip -n "$n" addr replace "$(node_ip "$i")/24" dev "$NAME-n$i"
        ip -n "$n" link set "$NAME-n$i" up
    done
    # Docker sets FORWARD's policy to DROP and br_netfilter sends bridged frames through it: without
    # this, node-to-node traffic (one node forwarding to another) would be dropped.
    if command -v iptables >/dev/null 2>&1 && [[ $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0) == 1 ]]; then
        if ! iptables -C FORWARD -i "$BR" -o "$BR" -m comment --comment "$OWNER" -j ACCEPT 2>/dev/null; then
            iptables -I FORWARD 1 -i "$BR" -o "$BR" -m comment --comment "$OWNER" -j ACCEPT
        fi
    fi
    say "network: bridge $BR $HOST_IP/24, namespaces $(for ((i = 1; i <= N; i++)); do printf '%s(%s) ' "$(ns "$i")" "$(node_ip "$i")"; done)"
}

down_network() {
    local i n h
    if command -v iptables >/dev/null 2>&1; then
        while iptables -D FORWARD -i "$BR" -o "$BR" -m comment --comment "$OWNER" -j ACCEPT 2>/dev/null; do :; done
    fi
    for ((i = 1; i <= N; i++)); do
        n=$(ns "$i") h=$NAME-h$i
        if [[ -d /sys/class/net/$h && $(ifalias "$h") == "$OWNER" ]]; then
            ip link del "$h" # takes its peer in the namespace with it
        fi
        if [[ -e /var/run/netns/$n ]]; then
            if [[ $(ifalias "$BR") == "$OWNER" || ! -d /sys/class/net/$BR ]]; then
                ip netns del "$n"
            else
                warn "namespace $n left alone: bridge $BR is not ours"
            fi
        fi
    done
    if [[ -d /sys/class/net/$BR ]]; then
        if [[ $(ifalias "$BR") == "$OWNER" ]]; then
            ip link del "$BR"
        else
            warn "bridge $BR left alone: it belongs to '$(ifalias "$BR")'"
        fi
    fi
}

# ---------------------------------------------------------------------------------------------------
# registry proxy: a node's namespace reaches only the bridge, yet its dependency builds run pip and npm,
# which fetch from PyPI and the npm registry. tinyproxy on the bridge's host address forwards HTTPS for
# the cluster subnet only (CONNECT to port 443; plain http:// is refused), as nobody, in the foreground
# (its pid is the one spawn records); config and filter in proxy/, its log in proxy.log.

PROXY_UID=65534 # nobody
PROXY_GID=65534 # nogroup

# A proxy this host itself needs (HTTPS_PROXY in up's environment) becomes tinyproxy's upstream.
proxy_upstream() {
    local u=${HTTPS_PROXY:-${https_proxy:-}}
    [[ -n $u ]] || return 0
    u=${u#http://}
    u=${u%/}
    if [[ $u == "$HOST_IP:$PROXY_PORT" ]]; then
        return 0 # our own (an environment that came from a node)
    elif [[ $u =~ ^([^@/]+@)?[A-Za-z0-9.-]+:[0-9]+$ ]]; then
        echo "Upstream http $u"
    else
        warn "HTTPS_PROXY=$u is not http://[user:pass@]host:port: the registry proxy goes direct"
    fi
}

proxy_conf() {
    cat <<EOF
# written by scripts/cluster.sh
Port $PROXY_PORT
Listen $HOST_IP
Allow $SUBNET.0/24
Timeout 600
MaxClients 64
# HTTPS only: pip and npm reach their registries over TLS (CONNECT), and nothing else is tunnelled
ConnectPort 443
# plain http:// requests (FilterURLs: the whole URL; a CONNECT's is host:port) are refused
Filter "$CLUSTER_DIR/proxy/filter"
FilterURLs On
FilterType ere
LogLevel Connect
DisableViaHeader Yes
XTinyproxy No
$(proxy_upstream)
EOF
}

# What every node's environment gets: pip (requests) and npm read these.
proxy_env() {
    local no="$SUBNET.0/24,$HOST_IP,localhost,127.0.0.1,::1"
    printf '%s\n' "HTTPS_PROXY=$PROXY_URL" "https_proxy=$PROXY_URL" "HTTP_PROXY=$PROXY_URL" "http_proxy=$PROXY_URL" \
        "NO_PROXY=$no" "no_proxy=$no"
}

proxy_listening() { timeout 2 bash -c ": >/dev/tcp/$HOST_IP/$PROXY_PORT" 2>/dev/null; }

proxy_start() {
    local d=$CLUSTER_DIR/proxy k
    mkdir -p "$d"
    proxy_conf >"$d/tinyproxy.conf"
    printf '%s\n' '^http://' >"$d/filter"
    chmod 755 "$d"
    chmod 644 "$d/tinyproxy.conf" "$d/filter"
    if alive proxy tinyproxy && proxy_listening; then
        return 0
    fi
    if ! alive proxy tinyproxy; then
        setpriv --reuid="$PROXY_UID" --regid="$PROXY_GID" --clear-groups -- test -r "$d/tinyproxy.conf" ||
            die "nobody cannot read $d/tinyproxy.conf: every parent directory of CLUSTER_DIR needs o+x (chmod o+x ...)"
        spawn proxy "$CLUSTER_DIR/proxy.log" tinyproxy \
            setpriv --reuid="$PROXY_UID" --regid="$PROXY_GID" --clear-groups --no-new-privs -- \
            tinyproxy -d -c "$d/tinyproxy.conf"
    fi
    for ((k = 0; k < 50; k++)); do
        proxy_listening && return 0
        alive proxy tinyproxy || break
        sleep 0.1
    done
    tail -n 20 "$CLUSTER_DIR/proxy.log" >&2 || true
    die "the registry proxy did not listen on $HOST_IP:$PROXY_PORT (log: $CLUSTER_DIR/proxy.log)"
}

step_proxy() {
    proxy_start
    say "proxy: tinyproxy (pid $(pid_of proxy)) on $PROXY_URL for $SUBNET.0/24, HTTPS only, as nobody; the nodes' HTTPS_PROXY"
}

# ---------------------------------------------------------------------------------------------------
# PostgreSQL: initdb + pg_ctl as an unprivileged user, listening on the bridge address, trust auth.

as_pg() { runuser -u "$PG_USER" -- "$@"; }
pg_pidfile_pid() { head -n1 "$CLUSTER_DIR/pg/data/postmaster.pid" 2>/dev/null || true; }
pg_ready() { "$PG_BIN/pg_isready" -q -h "$HOST_IP" -p "$PG_PORT" -t 2; }

step_pg_user() {
    if ! id -u "$PG_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER"
        info "created system user $PG_USER"
    fi
    mkdir -p "$CLUSTER_DIR/pg/run"
    chown "$PG_USER:" "$CLUSTER_DIR/pg" "$CLUSTER_DIR/pg/run"
    chmod 700 "$CLUSTER_DIR/pg"
    touch "$CLUSTER_DIR/pg.log"
    chown "$PG_USER:" "$CLUSTER_DIR/pg.log"
    as_pg test -w "$CLUSTER_DIR/pg" ||
        die "user $PG_USER cannot reach $CLUSTER_DIR/pg: every parent directory needs o+x (chmod o+x ...)"
}

pg_start() {
    local data=$CLUSTER_DIR/pg/data
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$CLUSTER_DIR/pg.log" -w -t 30 \
        -o "-c listen_addresses=$HOST_IP -p $PG_PORT -k $CLUSTER_DIR/pg/run" start >/dev/null 9>&- ||
        {
            tail -n 20 "$CLUSTER_DIR/pg.log" >&2
            die "PostgreSQL did not start (log: $CLUSTER_DIR/pg.log)"
        }
    mkdir -p "$PIDS"
    pg_pidfile_pid >"$PIDS/pg.pid"
}

pg_stop() {
    [[ -f $CLUSTER_DIR/pg/data/PG_VERSION ]] || return 0
    if as_pg "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/pg/data" status >/dev/null 2>&1; then
        as_pg "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/pg/data" -m fast -w -t 30 stop >/dev/null
    fi
    # pg_ctl returns once postmaster.pid is gone, a moment before the postmaster has exited
    local k
    for ((k = 0; k < 50; k++)); do
        alive pg postgres || break
        sleep 0.1
    done
    rm -f "$PIDS/pg.pid"
}

step_pg() {
    local data=$CLUSTER_DIR/pg/data
    if [[ ! -f $data/PG_VERSION ]]; then
        say "postgres: initdb in $data (superuser fnbox, trust auth)"
        as_pg "$PG_BIN/initdb" -D "$data" -U fnbox --auth=trust -E UTF8 --locale=C.UTF-8 >"$CLUSTER_DIR/pg-initdb.log" 2>&1 ||
            {
                tail -n 20 "$CLUSTER_DIR/pg-initdb.log" >&2
                die "initdb failed"
            }
        # everything on the cluster network is trusted: a local test cluster, no passwords
        printf 'host all all %s.0/24 trust\n' "$SUBNET" >>"$data/pg_hba.conf"
        cat >>"$data/postgresql.conf" <<EOF
# scripts/cluster.sh
max_connections = 200
shared_buffers = 64MB
fsync = on
EOF
    fi
    if as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1 && pg_ready; then
        pg_pidfile_pid >"$PIDS/pg.pid"
        say "postgres: already running (pid $(pid_of pg)) on $HOST_IP:$PG_PORT"
    else
        pg_start
        say "postgres: started (pid $(pid_of pg)) on $HOST_IP:$PG_PORT"
    fi
    if [[ $(as_pg "$PG_BIN/psql" -h "$CLUSTER_DIR/pg/run" -p "$PG_PORT" -U fnbox -d postgres -Atc "select 1 from pg_database where datname = 'fnbox'") != 1 ]]; then
        as_pg "$PG_BIN/createdb" -h "$CLUSTER_DIR/pg/run" -p "$PG_PORT" -U fnbox fnbox
    fi
    echo "$STORE_URL" >"$CLUSTER_DIR/store_url"
    info "store: $STORE_URL"
}

# ---------------------------------------------------------------------------------------------------
# NATS: three servers, JetStream, one cluster (routes), 8 MiB payloads.

nats_conf() { # $1 = index
    local i=$1 j routes=()
    for ((j = 1; j <= N; j++)); do
        ((j == i)) || routes+=("nats-route://$HOST_IP:$((ROUTE_PORT + j - 1))")
    done
    cat <<EOF
# written by scripts/cluster.sh
server_name: $NAME-nats$i
listen: $HOST_IP:$((NATS_PORT + i - 1))
http: $HOST_IP:$((MON_PORT + i - 1))
# fnbox outputs can be 6 MiB, plus headers and JSON framing
max_payload: 8388608
jetstream {
    store_dir: "$CLUSTER_DIR/nats$i/js"
    max_memory_store: 268435456
    max_file_store: 2147483648
}
cluster {
    name: $NAME-cluster
    listen: $HOST_IP:$((ROUTE_PORT + i - 1))
    routes: [
$(printf '        %s\n' "${routes[@]}")
    ]
}
EOF
}

nats_start() { # $1 = index
    local i=$1
    mkdir -p "$CLUSTER_DIR/nats$i/js"
    nats_conf "$i" >"$CLUSTER_DIR/nats$i/nats.conf"
    if alive "nats$i" nats-server; then
        return 0
    fi
    spawn "nats$i" "$CLUSTER_DIR/nats$i.log" nats-server nats-server -c "$CLUSTER_DIR/nats$i/nats.conf"
}

# JetStream is ready on server i when it answers healthz (which fails until it has contact with a meta
# leader) and names a meta leader. (meta_cluster.cluster_size is no help: 2.9.10 reports 2 for three
# current peers after a restart on existing state.)
nats_leader() { # $1 = index; prints the meta leader server i knows of
    curl -fsS --max-time 2 "$(nats_mon "$1")/jsz" 2>/dev/null | jq -r '.meta_cluster.leader // ""' 2>/dev/null || true
}
nats_ready() { # $1 = index
    http_ok "$(nats_mon "$1")/healthz" && [[ -n $(nats_leader "$1") ]]
}

wait_nats() { # $@ = indices; bounded to 60 s (a restart of all three on existing state takes ~12 s to elect)
    local deadline=$((SECONDS + 60)) i ok
    while ((SECONDS < deadline)); do
        ok=1
        for i in "$@"; do
            alive "nats$i" nats-server || {
                tail -n 20 "$CLUSTER_DIR/nats$i.log" >&2
                die "nats$i exited (log: $CLUSTER_DIR/nats$i.log)"
            }
            nats_ready "$i" || ok=0
        done
        # and all servers agree on the leader (a fresh election can leave one naming the old one)
        if ((ok)) && (($(for ((i = 1; i <= N; i++)); do alive "nats$i" nats-server && nats_leader "$i"; done | sort -u | wc -l) == 1)); then
            return 0
        fi
        sleep 0.2
    done
    die "JetStream not ready within 60 s on nats $* (logs: $CLUSTER_DIR/nats*.log)"
}

# Started early and waited for late: a restart on existing JetStream state takes ~10 s to elect a meta
# leader (a fresh cluster under 2 s), which overlaps with the dockerds and image loads.
NATS_STARTED=()
NATS_T0=
step_nats_start() {
    local i
    NATS_T0=$(now_s)
    for ((i = 1; i <= N; i++)); do
        alive "nats$i" nats-server || NATS_STARTED+=("$i")
        nats_start "$i"
    done
}

step_nats_wait() {
    wait_nats $(seq 1 "$N")
    echo "$NATS_URLS" >"$CLUSTER_DIR/nats_urls"
    if ((${#NATS_STARTED[@]})); then
        say "nats: started ${NATS_STARTED[*]}, JetStream cluster ready (checked $(elapsed_since "$NATS_T0") s after the start) (leader $(nats_leader 1))"
    else
        say "nats: already running, JetStream ready"
    fi
    info "nats: $NATS_URLS"
}

# ---------------------------------------------------------------------------------------------------
# dockerd per namespace (nsenter --net, not `ip netns exec`, which remounts /sys and hides the cgroup
# v1 mounts), with the main dockerd's runtimes.

node_docker() { # $1 = index, rest = docker args
    local i=$1
    shift
    DOCKER_HOST="unix://$(docker_sock "$i")" timeout 120 "$DOCKER" "$@"
}
dockerd_answers() { node_docker "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

dockerd_config() { # $1 = index
    local i=$1 d=$CLUSTER_DIR/node$1 main='{}'
    if [[ -s $DAEMON_JSON ]]; then
        main=$(cat "$DAEMON_JSON")
    fi
    jq -n --argjson m "$main" --arg d "$d" '{
        "data-root": ($d + "/docker-data"),
        "exec-root": ($d + "/docker-exec"),
        "pidfile": ($d + "/docker.pid"),
        "hosts": ["unix://" + $d + "/docker.sock"],
        "bridge": "none",
        "iptables": false,
        "ip-forward": false,
        "ip-masq": false,
        "shutdown-timeout": 10,
        "runtimes": ($m.runtimes // {})
    } + ($m | with_entries(select(.key == "default-runtime" or .key == "storage-driver")))'
}

dockerd_start() { # $1 = index
    local i=$1 d=$CLUSTER_DIR/node$1 deadline
    if alive "dockerd$i" dockerd && dockerd_answers "$i"; then
        return 0
    fi
    if alive "dockerd$i" dockerd; then
        info "dockerd$i (pid $(pid_of "dockerd$i")) is not answering yet, waiting"
    else
        mkdir -p "$d/docker-data" "$d/docker-exec"
        (($(printf '%s' "$d/docker-exec/containerd/containerd.sock.ttrpc" | wc -c) <= 104)) ||
            die "CLUSTER_DIR is too deep for Unix socket paths ($d/docker-exec/...); use a shorter one"
        dockerd_config "$i" >"$d/daemon.json"
        # a pid file left by a dockerd that was killed blocks the start
        rm -f "$d/docker.pid"
        spawn "dockerd$i" "$CLUSTER_DIR/dockerd$i.log" dockerd \
            nsenter "--net=/var/run/netns/$(ns "$i")" -- dockerd --config-file "$d/daemon.json"
    fi
    deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        dockerd_answers "$i" && return 0
        alive "dockerd$i" dockerd || break
        sleep 0.3
    done
    tail -n 30 "$CLUSTER_DIR/dockerd$i.log" >&2 || true
    die "dockerd$i did not answer within 60 s (log: $CLUSTER_DIR/dockerd$i.log)"
}

# Processes whose command line names this node's exec-root: the containerd and shims of dockerd i.
# (Only read to make sure they are gone; the path is unique to this cluster directory.)
node_leftovers() { # $1 = index
    local needle=$CLUSTER_DIR/node$1/docker-exec p c
    for p in /proc/[0-9]*; do
        c=
        read -r c 2>/dev/null <"$p/comm" || true
        case $c in
        containerd* | runc* | runsc* | exe) ;; # runsc's sandbox and gofer re-exec as "exe"
        *) continue ;;
        esac
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$needle" && echo "${p#/proc/}"
    done
    return 0
}

dockerd_stop() { # $1 = index
    local i=$1 left p k
    if ! alive "dockerd$i" dockerd && [[ -n $(node_leftovers "$i") && -e /var/run/netns/$(ns "$i") ]]; then
        # A dockerd that was SIGKILLed takes its containerd with it but leaves the shims and the
        # containers running. A new dockerd on the same data-root reconnects and, with live-restore off,
        # kills those containers; then it is stopped like any other.
        info "dockerd$i is gone but left shims behind: starting it again to clean its containers up"
        dockerd_start "$i" || true
    fi
    if alive "dockerd$i" dockerd; then
        # dockerd stops its containers (shutdown-timeout 10 s) and its containerd before it exits
        stop_pid "dockerd$i" dockerd 40
    fi
    rm -f "$PIDS/dockerd$i.pid"
    # last resort: whatever of this dockerd's containerd, shims and runsc is still there is ours; by pid
    for ((k = 0; k < 20; k++)); do
        left=$(node_leftovers "$i")
        [[ -z $left ]] && break
        ((k == 0)) && warn "dockerd$i left processes behind: $(echo $left) (SIGKILL)"
        for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
        sleep 0.2
    done
    [[ -z $(node_leftovers "$i") ]] || warn "dockerd$i: processes still alive: $(node_leftovers "$i")"
    # dockerd bind-mounts its data-root on itself (to make it a shared mount) and undoes that on a clean
    # exit; one that was SIGKILLed leaves it, and the next dockerd finds it in place and does not undo it
    local root=$CLUSTER_DIR/node$i/docker-data
    for ((k = 0; k < 5; k++)); do
        mountpoint -q "$root" || break
        umount "$root" 2>/dev/null || umount -l "$root" || true
    done
}

step_dockerds() {
    local i pids=() t0 rc=0
    t0=$(now_s)
    grep -q '"runsc"' <<<"$(cat "$DAEMON_JSON" 2>/dev/null)" ||
        warn "$DAEMON_JSON has no runsc runtime: the nodes will have runc only (run make setup)"
    for ((i = 1; i <= N; i++)); do
        dockerd_start "$i" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    ((rc == 0)) || die "a dockerd did not come up"
    say "dockerd: $N daemons answering in $(elapsed_since "$t0") s ($(node_docker 1 info --format '{{.ServerVersion}}, runtimes {{range $k, $v := .Runtimes}}{{$k}} {{end}}'))"
    for ((i = 1; i <= N; i++)); do info "node$i: DOCKER_HOST=unix://$(docker_sock "$i")"; done
}

# ---------------------------------------------------------------------------------------------------
# images: one `docker save` of both images from the main dockerd (they share their base layers, so one
# tarball is about half the size of two), cached under images/ keyed by the image ids; `docker load` into
# each node whose dockerd lacks one of those ids.

main_docker() { DOCKER_HOST=$MAIN_DOCKER_HOST timeout 300 "$DOCKER" "$@"; }

# Writes "image id" lines for IMAGES as the main dockerd has them now to $1; when the main dockerd does
# not answer, falls back to the newest cached tarball's ids (with a warning).
image_ids() { # $1 = output file
    local img id ids="" cached all
    # the common case in one docker call
    if all=$(main_docker image inspect -f '{{.Id}}' "${IMAGES[@]}" 2>/dev/null) && (($(wc -l <<<"$all") == ${#IMAGES[@]})); then
        paste -d' ' <(printf '%s\n' "${IMAGES[@]}") <(printf '%s\n' "$all") >"$1"
        return
    fi
    for img in "${IMAGES[@]}"; do
        id=$(main_docker image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)
        if [[ -z $id ]]; then
            cached=$(ls -t "$CLUSTER_DIR"/images/fnbox-images-*.ids 2>/dev/null | head -n1 || true)
            if main_docker version >/dev/null 2>&1; then
                die "image $img not in the main dockerd (run make setup)"
            elif [[ -n $cached && -s ${cached%.ids}.tar ]]; then
                warn "main dockerd ($MAIN_DOCKER_HOST) not answering: using the cached ${cached%.ids}.tar, which may be stale"
                cp "$cached" "$1"
                return
            else
                die "main dockerd ($MAIN_DOCKER_HOST) not answering and no cached images in $CLUSTER_DIR/images (start it: make setup)"
            fi
        fi
        ids+="$img $id"$'\n'
    done
    printf '%s' "$ids" >"$1"
}

# Prints the path of the tarball of the images listed in $1, saving it from the main dockerd when absent.
image_tarball() { # $1 = ids file
    local key tar t0
    key=$(sha256sum <"$1" | cut -c1-16)
    tar=$CLUSTER_DIR/images/fnbox-images-$key.tar
    if [[ ! -s $tar || ! -s ${tar%.tar}.ids ]]; then
        t0=$(now_s)
        rm -f "$CLUSTER_DIR"/images/fnbox-images-*
        main_docker save -o "$tar.tmp" "${IMAGES[@]}"
        # the ids again: an image rebuilt while we saved would not match the key
        cmp -s "$1" <(image_ids /dev/stdout) || die "an image changed while it was being saved; run up again"
        mv -f "$tar.tmp" "$tar"
        cp "$1" "${tar%.tar}.ids"
        info "saved ${IMAGES[*]} to $tar ($(du -m "$tar" | cut -f1) MB) in $(elapsed_since "$t0") s" >&2
    fi
    echo "$tar"
}

node_has_images() { # $1 = index, $2 = ids file (one docker call: inspect prints the ids in order)
    [[ $(node_docker "$1" image inspect -f '{{.Id}}' "${IMAGES[@]}" 2>/dev/null || true) == "$(cut -d' ' -f2 "$2")" ]]
}

step_images() {
    local ids tar i t0 jobs=() lacking=() rc=0
    t0=$(now_s)
    mkdir -p "$CLUSTER_DIR/images"
    ids=$CLUSTER_DIR/images/wanted.ids
    image_ids "$ids"
    for ((i = 1; i <= N; i++)); do
        node_has_images "$i" "$ids" || lacking+=("$i")
    done
    if ((${#lacking[@]} == 0)); then
        say "images: every node already has ${IMAGES[*]} (same image ids as the main dockerd)"
        return
    fi
    tar=$(image_tarball "$ids")
    for i in "${lacking[@]}"; do
        node_docker "$i" load -q -i "$tar" >/dev/null &
        jobs+=($!)
    done
    for p in "${jobs[@]}"; do wait "$p" || rc=1; done
    ((rc == 0)) || die "docker load into a node failed"
    for i in "${lacking[@]}"; do
        node_has_images "$i" "$ids" || die "node$i's dockerd lacks an image after docker load"
    done
    say "images: ${IMAGES[*]} loaded into node(s) ${lacking[*]} in $(elapsed_since "$t0") s"
}

# ---------------------------------------------------------------------------------------------------
# fnbox nodes

cluster_mode() { "$FNBOX_BIN" serve --help 2>/dev/null | grep -q -- '--cluster'; }

node_args() { # $1 = index; one argument per line
    local i=$1 extra=()
    printf '%s\n' serve --addr "$(node_ip "$i"):$NODE_PORT" --data-dir "$CLUSTER_DIR/node$i/data"
    if cluster_mode; then
        printf '%s\n' --store "$STORE_URL" --cluster "$NATS_URLS" --node-id "node$i" --advertise "$(node_url "$i")"
    fi
    printf '%s\n' --insecure-open
    # shellcheck disable=SC2206
    extra=(${FNBOX_NODE_ARGS:-})
    ((${#extra[@]} == 0)) || printf '%s\n' "${extra[@]}"
}

node_healthy() { http_ok "$(node_url "$1")/healthz"; }

node_start() { # $1 = index; uses node$i/args when `up` wrote it (same args on every start)
    local i=$1 d=$CLUSTER_DIR/node$1 args=() penv=() deadline
    if alive "node$i" fnbox && node_healthy "$i"; then
        return 0
    fi
    if ! alive "node$i" fnbox; then
        mkdir -p "$d/data"
        [[ -s $d/args ]] || node_args "$i" >"$d/args"
        mapfile -t args <"$d/args"
        # the rest of the environment (the host's TLS trust: SSL_CERT_FILE, PIP_CERT,
        # NODE_EXTRA_CA_CERTS, pip's and npm's own settings) is inherited from this script's caller
        mapfile -t penv < <(proxy_env)
        spawn "node$i" "$CLUSTER_DIR/node$i.log" fnbox \
            nsenter "--net=/var/run/netns/$(ns "$i")" -- \
            env "DOCKER_HOST=unix://$(docker_sock "$i")" RUST_LOG="${RUST_LOG:-info}" "${penv[@]}" "$FNBOX_BIN" "${args[@]}"
    fi
    deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        node_healthy "$i" && return 0
        alive "node$i" fnbox || break
        sleep 0.2
    done
    tail -n 30 "$CLUSTER_DIR/node$i.log" >&2 || true
    die "node$i not healthy within 60 s (log: $CLUSTER_DIR/node$i.log)"
}

node_stop() { stop_pid "node$1" fnbox 20; }

step_nodes() {
    local i t0 pids=() rc=0 mode=single-node
    t0=$(now_s)
    cluster_mode && mode="cluster (--store, --cluster)"
    for ((i = 1; i <= N; i++)); do
        # args are recomputed on every up (a new binary may have gained the cluster flags)
        alive "node$i" fnbox || { mkdir -p "$CLUSTER_DIR/node$i" && node_args "$i" >"$CLUSTER_DIR/node$i/args"; }
        node_start "$i" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    ((rc == 0)) || die "a node did not come up"
    : >"$CLUSTER_DIR/urls.tmp"
    for ((i = 1; i <= N; i++)); do node_url "$i" >>"$CLUSTER_DIR/urls.tmp"; done
    mv -f "$CLUSTER_DIR/urls.tmp" "$CLUSTER_DIR/urls"
    say "fnbox: $N nodes healthy in $(elapsed_since "$t0") s, $mode mode ($FNBOX_BIN)"
}

# ---------------------------------------------------------------------------------------------------
# subcommands

cmd_up() {
    local t0
    t0=$(now_s)
    need_root
    load_settings
    derive
    save_settings
    say "cluster $NAME in $CLUSTER_DIR"
    step_packages
    step_binary
    step_pg_user
    step_network
    step_proxy
    step_nats_start
    step_pg
    step_dockerds
    step_images
    step_nats_wait
    step_nodes
    say "up in $(elapsed_since "$t0") s; API URLs (also in $CLUSTER_DIR/urls):"
    cat "$CLUSTER_DIR/urls"
}

cmd_down() {
    local i t0
    t0=$(now_s)
    need_root
    if [[ ! -f $ENV_FILE ]]; then
        say "down: nothing to do ($ENV_FILE absent)"
        return 0
    fi
    load_settings
    derive
    local t1
    t1=$(now_s)
    for ((i = 1; i <= N; i++)); do node_stop "$i" & done
    wait
    say "fnbox nodes stopped in $(elapsed_since "$t1") s"
    t1=$(now_s)
    for ((i = 1; i <= N; i++)); do dockerd_stop "$i" & done
    wait
    say "dockerds stopped (their containers with them) in $(elapsed_since "$t1") s"
    t1=$(now_s)
    for ((i = 1; i <= N; i++)); do stop_pid "nats$i" nats-server 10 & done
    wait
    say "nats stopped in $(elapsed_since "$t1") s"
    t1=$(now_s)
    pg_stop
    say "postgres stopped in $(elapsed_since "$t1") s"
    stop_pid proxy tinyproxy 5
    say "proxy stopped"
    down_network
    say "network removed (bridge $BR, namespaces $NAME-node1..$N)"
    rm -f "$ENV_FILE" "$CLUSTER_DIR/urls"
    say "down in $(elapsed_since "$t0") s (data kept in $CLUSTER_DIR; rm -rf it for a fresh start)"
}

cmd_status() {
    local i pid state
    if [[ ! -f $ENV_FILE ]]; then
        say "no cluster in $CLUSTER_DIR"
        return 0
    fi
    load_settings
    derive
    say "cluster $NAME in $CLUSTER_DIR (bridge $BR $HOST_IP)"
    row() { printf '    %-9s %-8s %-7s %s\n' "$@"; }
    row what pid state where
    if pid=$(pg_pidfile_pid) && [[ -n $pid && -d /proc/$pid ]]; then
        state=down
        pg_ready && state=ready
    else pid=- state=down; fi
    row pg "$pid" "$state" "$STORE_URL"
    for ((i = 1; i <= N; i++)); do
        state=down pid=-
        if alive "nats$i" nats-server; then
            pid=$(pid_of "nats$i") state=up
            nats_ready "$i" && state=js-ok
        fi
        row "nats$i" "$pid" "$state" "nats://$HOST_IP:$((NATS_PORT + i - 1))"
    done
    state=down pid=-
    if alive proxy tinyproxy; then
        pid=$(pid_of proxy) state=up
        proxy_listening && state=ready
    fi
    row proxy "$pid" "$state" "$PROXY_URL"
    for ((i = 1; i <= N; i++)); do
        state=down pid=-
        if alive "dockerd$i" dockerd; then
            pid=$(pid_of "dockerd$i") state=up
            dockerd_answers "$i" && state=ready
        fi
        row "dockerd$i" "$pid" "$state" "unix://$(docker_sock "$i")"
    done
    for ((i = 1; i <= N; i++)); do
        state=down pid=-
        if alive "node$i" fnbox; then
            pid=$(pid_of "node$i") state=up
            node_healthy "$i" && state=healthy
        fi
        row "node$i" "$pid" "$state" "$(node_url "$i")"
    done
}

with_settings() {
    [[ -f $ENV_FILE ]] || die "no cluster in $CLUSTER_DIR (run up first)"
    need_root
    load_settings
    derive
}

# one subcommand at a time per cluster directory (status only reads)
if [[ ${1:-} != status && -n ${1:-} ]]; then
    exec 9>"$CLUSTER_DIR/.lock"
    flock -w 600 9 || die "another cluster.sh holds $CLUSTER_DIR/.lock"
fi

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
kill-node)
    check_index kill-node "${2:-}"
    with_settings
    if alive "node$2" fnbox; then
        kill -KILL "$(pid_of "node$2")"
        for ((k = 0; k < 50; k++)); do alive "node$2" fnbox || break; sleep 0.1; done
        say "node$2: killed (SIGKILL)"
    else
        say "node$2: not running"
    fi
    rm -f "$PIDS/node$2.pid"
    ;;
stop-node)
    check_index stop-node "${2:-}"
    with_settings
    node_stop "$2"
    say "node$2: stopped"
    ;;
start-node)
    check_index start-node "${2:-}"
    with_settings
    t0=$(now_s)
    node_start "$2"
    say "node$2: healthy (pid $(pid_of "node$2")) at $(node_url "$2") in $(elapsed_since "$t0") s"
    ;;
kill-nats)
    check_index kill-nats "${2:-}"
    with_settings
    if alive "nats$2" nats-server; then
        kill -KILL "$(pid_of "nats$2")"
        for ((k = 0; k < 50; k++)); do alive "nats$2" nats-server || break; sleep 0.1; done
        say "nats$2: killed (SIGKILL)"
    else
        say "nats$2: not running"
    fi
    rm -f "$PIDS/nats$2.pid"
    ;;
start-nats)
    check_index start-nats "${2:-}"
    with_settings
    t0=$(now_s)
    nats_start "$2"
    wait_nats "$2"
    say "nats$2: up (pid $(pid_of "nats$2")), JetStream ready in $(elapsed_since "$t0") s"
    ;;
kill-dockerd)
    check_index kill-dockerd "${2:-}"
    with_settings
    if alive "dockerd$2" dockerd; then
        kill -KILL "$(pid_of "dockerd$2")"
        for ((k = 0; k < 50; k++)); do alive "dockerd$2" dockerd || break; sleep 0.1; done
        say "dockerd$2: killed (SIGKILL; its containers keep running until a dockerd starts on that data-root)"
    else
        say "dockerd$2: not running"
    fi
    rm -f "$PIDS/dockerd$2.pid"
    ;;
start-dockerd)
    check_index start-dockerd "${2:-}"
    with_settings
    t0=$(now_s)
    dockerd_start "$2"
    say "dockerd$2: answering (pid $(pid_of "dockerd$2")) on unix://$(docker_sock "$2") in $(elapsed_since "$t0") s"
    ;;
stop-pg)
    with_settings
    pg_stop
    say "postgres: stopped"
    ;;
start-pg)
    with_settings
    t0=$(now_s)
    pg_start
    say "postgres: up (pid $(pid_of pg)) in $(elapsed_since "$t0") s"
    ;;
restart-pg)
    with_settings
    t0=$(now_s)
    pg_stop
    pg_start
    say "postgres: restarted (pid $(pid_of pg)) in $(elapsed_since "$t0") s"
    ;;
*)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
