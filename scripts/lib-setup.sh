# shellcheck shell=bash
# Helpers and steps for scripts/setup.sh (sourced; expects ROOT to be set and `set -euo pipefail`).

DAEMON_JSON=${FNBOX_DAEMON_JSON:-/etc/docker/daemon.json}
DOCKERD_LOG=/var/log/fnbox-dockerd.log
DOCKERD_PIDFILE=/run/fnbox-dockerd.pid
BASE_IMAGE=fnbox-base:bookworm
SMOKE_RUNTIMES=${FNBOX_SMOKE_RUNTIMES:-runc runsc}
# runsc args: no network in the root namespace (else every runsc container fails here), and permission to
# connect to host Unix sockets, which fnbox's socket channel needs (the only host sockets a sandbox can
# see are in its own bind-mounted socket directory).
RUNTIME_ARGS='["--network=none","--host-uds=open"]'

say() { printf '[setup] %s\n' "$*"; }
die() {
    printf '[setup] ERROR: %s\n' "$*" >&2
    exit 1
}
have_cmd() { command -v "$1" >/dev/null 2>&1; }
now_s() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN{printf "%.1f", b-a}'; }

# The docker client: Debian's /usr/bin/docker when present, otherwise whatever is on PATH.
docker_bin() {
    if [[ -x /usr/bin/docker ]]; then
        echo /usr/bin/docker
    else
        command -v docker || true
    fi
}
docker() {
    local bin
    bin=$(docker_bin)
    [[ -n $bin ]] || die "no docker client found"
    "$bin" "$@"
}

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

# ---------------------------------------------------------------------------------------------------
# 1. apt packages
step_apt_packages() {
    local missing=() pkg cmd
    # package:command — a package counts as present when dpkg has it or its command exists
    # (e.g. docker-ce instead of docker.io, or runsc installed from gVisor's own release).
    # (python3 and nodejs on the host run the bootstrap tests, runtimes/tests)
    for pair in docker.io:dockerd runsc:runsc mmdebstrap:mmdebstrap jq:jq curl:curl python3:python3 nodejs:node; do
        pkg=${pair%%:*} cmd=${pair#*:}
        if [[ $pkg == mmdebstrap && ${FNBOX_PULL_BASE:-0} == 1 ]]; then
            continue
        fi
        if ! pkg_installed "$pkg" && ! have_cmd "$cmd"; then
            missing+=("$pkg")
        fi
    done
    # Dependency builds resolve with the system Python's pip (one that `nobody` may run) and
    # with npm; Debian's npm only when there is none (a NodeSource node ships its own).
    if ! pkg_installed python3-pip && ! /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
        missing+=(python3-pip)
    fi
    if ! have_cmd npm; then
        missing+=(npm)
    fi
    if [[ -z $(docker_bin) ]] && [[ ! " ${missing[*]} " == *" docker.io "* ]]; then
        missing+=(docker.io)
    fi
    if [[ ${FNBOX_PULL_BASE:-0} != 1 && ! -e /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
        missing+=(debian-archive-keyring)
    fi
    if ((${#missing[@]} == 0)); then
        say "apt packages: already installed (docker.io runsc mmdebstrap jq curl python3 python3-pip nodejs npm)"
        return
    fi
    say "apt packages: installing ${missing[*]}"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------------------------------------------
# 1b. a newer gVisor beside bookworm's: Debian trixie's runsc (a static Go binary, runs on bookworm),
# pinned by version and SHA-256 (from trixie's Packages index) and fetched from the Debian archive's pool.
# dockerd gets it as a second runtime, `runsc-20240729`; fnbox uses `runsc` unless told otherwise
# (`--gvisor-runtime`). docs/BENCHMARKS.md ("gVisor versions") has the two measured side by side.
RUNSC_NEW_NAME=runsc-20240729
RUNSC_NEW_DEB=pool/main/g/golang-gvisor-gvisor/runsc_0.0~20240729.0-4+b7_amd64.deb
RUNSC_NEW_SHA256=3c25a5130dfac2f71237d5baad56ac86a255de87a0400f11b36a555156dc325a
RUNSC_NEW_DIR=/usr/local/lib/fnbox/$RUNSC_NEW_NAME
RUNSC_NEW_PATH=
step_runsc_newer() {
    if [[ ${FNBOX_SKIP_NEWER_RUNSC:-0} == 1 ]]; then
        say "newer runsc: skipped (FNBOX_SKIP_NEWER_RUNSC=1)"
        return
    fi
    if [[ $(dpkg --print-architecture 2>/dev/null) != amd64 ]]; then
        say "newer runsc: pinned for amd64 only; skipped"
        return
    fi
    if [[ -x $RUNSC_NEW_DIR/runsc && $(cat "$RUNSC_NEW_DIR/deb.sha256" 2>/dev/null) == "$RUNSC_NEW_SHA256" ]]; then
        RUNSC_NEW_PATH=$RUNSC_NEW_DIR/runsc
        say "newer runsc: already installed ($RUNSC_NEW_PATH, $("$RUNSC_NEW_PATH" --version 2>/dev/null | head -1))"
        return
    fi
    local mirror=${FNBOX_DEBIAN_ARCHIVE:-http://deb.debian.org/debian} tmp
    tmp=$(mktemp -d)
    if ! curl -fsS --max-time 300 -o "$tmp/runsc.deb" "$mirror/$RUNSC_NEW_DEB"; then
        rm -rf "$tmp"
        say "newer runsc: cannot download $mirror/$RUNSC_NEW_DEB; only bookworm's runsc is registered"
        return
    fi
    if ! echo "$RUNSC_NEW_SHA256  $tmp/runsc.deb" | sha256sum -c --quiet - >/dev/null 2>&1; then
        rm -rf "$tmp"
        die "newer runsc: $RUNSC_NEW_DEB does not have the pinned SHA-256 $RUNSC_NEW_SHA256"
    fi
    dpkg-deb -x "$tmp/runsc.deb" "$tmp/x"
    mkdir -p "$RUNSC_NEW_DIR"
    # A rename, so sandboxes running the old file keep it.
    install -m 0755 "$tmp/x/usr/bin/runsc" "$RUNSC_NEW_DIR/runsc.tmp"
    mv -f "$RUNSC_NEW_DIR/runsc.tmp" "$RUNSC_NEW_DIR/runsc"
    echo "$RUNSC_NEW_SHA256" >"$RUNSC_NEW_DIR/deb.sha256"
    rm -rf "$tmp"
    RUNSC_NEW_PATH=$RUNSC_NEW_DIR/runsc
    say "newer runsc: installed $RUNSC_NEW_PATH ($("$RUNSC_NEW_PATH" --version 2>/dev/null | head -1))"
}

# ---------------------------------------------------------------------------------------------------
# 2. runsc (and the newer one) in /etc/docker/daemon.json (merged)
RUNSC_PATH=
step_daemon_json() {
    RUNSC_PATH=$(command -v runsc) || die "runsc not found after install"
    local cur new
    if [[ -s $DAEMON_JSON ]]; then
        cur=$(cat "$DAEMON_JSON")
        jq -e 'type == "object"' >/dev/null 2>&1 <<<"$cur" || die "$DAEMON_JSON is not a JSON object; fix it by hand"
    else
        cur='{}'
    fi
    # Keep every other setting, and any extra runsc args except conflicting --network= / host-uds ones
    new=$(jq -S --arg p "$RUNSC_PATH" --argjson a "$RUNTIME_ARGS" --arg np "$RUNSC_NEW_PATH" --arg nn "$RUNSC_NEW_NAME" '
        .runtimes = (.runtimes // {})
        | .runtimes.runsc = ((.runtimes.runsc // {})
            | .path = $p
            | .runtimeArgs = ([(.runtimeArgs // [])[]
                | select((startswith("--network=") or startswith("--host-uds") or startswith("--fsgofer-host-uds")) | not)] + $a))
        | if $np != "" then .runtimes[$nn] = {path: $np, runtimeArgs: $a} else . end
    ' <<<"$cur")
    local shown
    shown=$(jq -r 'join(" ")' <<<"$RUNTIME_ARGS")
    if [[ $(jq -S . <<<"$cur") == "$new" ]]; then
        say "daemon.json: runsc already registered ($RUNSC_PATH $shown)"
        return
    fi
    mkdir -p "$(dirname "$DAEMON_JSON")"
    local tmp="$DAEMON_JSON.fnbox.tmp"
    printf '%s\n' "$new" >"$tmp"
    mv -f "$tmp" "$DAEMON_JSON"
    say "daemon.json: registered runsc ($RUNSC_PATH $shown) in $DAEMON_JSON"
}

# ---------------------------------------------------------------------------------------------------
# 3. docker daemon
docker_answers() { timeout 15 "$(docker_bin)" info >/dev/null 2>&1; }

# runsc (and the newer one) as the running daemon knows them, normalised like the file.
RUNSC_SHAPE='[.runsc, .[$nn]] | map(. // {} | {path: .path, runtimeArgs: (.runtimeArgs // [])})'
daemon_runsc() {
    timeout 15 "$(docker_bin)" info --format '{{json .Runtimes}}' 2>/dev/null |
        jq -cS --arg nn "$RUNSC_NEW_NAME" "$RUNSC_SHAPE" 2>/dev/null || true
}
file_runsc() {
    jq -cS --arg nn "$RUNSC_NEW_NAME" ".runtimes | $RUNSC_SHAPE" "$DAEMON_JSON"
}

our_dockerd_pid() {
    local pid
    pid=$(cat "$DOCKERD_PIDFILE" 2>/dev/null) || return 1
    [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1
    echo "$pid"
}

systemd_docker() {
    [[ -d /run/systemd/system ]] && have_cmd systemctl && systemctl cat docker.service >/dev/null 2>&1
}

wait_docker() { # $1 = seconds, $2 = pid to watch (optional)
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        docker_answers && return 0
        if [[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null; then
            return 1
        fi
        sleep 0.3
    done
    return 1
}

start_detached_dockerd() {
    have_cmd dockerd || die "dockerd not found"
    mkdir -p "$(dirname "$DOCKERD_LOG")" "$(dirname "$DOCKERD_PIDFILE")"
    printf '\n==== %s fnbox setup starting dockerd\n' "$(date -Is)" >>"$DOCKERD_LOG"
    # a pid file left by a dockerd that was killed (e.g. the machine's processes were ended) blocks the start
    # when its pid now belongs to another process
    local old
    old=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [[ -n $old && $(cat "/proc/$old/comm" 2>/dev/null) != dockerd ]]; then
        rm -f /var/run/docker.pid
    fi
    # setsid: own session, so it survives this shell; stdio detached from the caller.
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$DOCKERD_PIDFILE"
    if ! wait_docker 30 "$pid"; then
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        die "dockerd did not answer within 30 s (log: $DOCKERD_LOG)"
    fi
    # dockerd's own pidfile holds the real pid (in case setsid had to fork).
    if [[ -s /var/run/docker.pid ]]; then
        cp /var/run/docker.pid "$DOCKERD_PIDFILE"
    fi
}

stop_our_dockerd() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    die "dockerd (pid $pid) did not stop within 20 s"
}

step_dockerd() {
    local pid i
    if docker_answers; then
        if [[ $(daemon_runsc) == "$(file_runsc)" ]]; then
            say "docker daemon: already running, runsc registered"
            return
        fi
        # The daemon predates the daemon.json change. dockerd reloads "runtimes" on SIGHUP (checked with
        # 20.10: it does), which keeps running containers alive; verify, and restart only when it did not.
        pid=$(cat /var/run/docker.pid 2>/dev/null || true)
        if [[ -n $pid ]] && kill -HUP "$pid" 2>/dev/null; then
            for ((i = 0; i < 20; i++)); do
                [[ $(daemon_runsc) == "$(file_runsc)" ]] && break
                sleep 0.25
            done
        fi
        if [[ $(daemon_runsc) == "$(file_runsc)" ]]; then
            say "docker daemon: running, reloaded daemon.json (SIGHUP) to register runsc"
        elif systemd_docker && systemctl is-active --quiet docker; then
            say "docker daemon: restarting docker.service to load runsc"
            systemctl restart docker
            wait_docker 30 || die "docker.service did not come back within 30 s"
        elif pid=$(our_dockerd_pid); then
            say "docker daemon: restarting our dockerd (pid $pid) to load runsc"
            stop_our_dockerd "$pid"
            start_detached_dockerd
        else
            die "the running docker daemon (not started by this script) did not pick up runsc from $DAEMON_JSON on SIGHUP; restart it"
        fi
    else
        if systemd_docker; then
            say "docker daemon: starting docker.service"
            systemctl start docker
            wait_docker 30 || die "docker.service did not answer within 30 s"
        elif pid=$(our_dockerd_pid); then
            say "docker daemon: our dockerd (pid $pid) is not answering yet, waiting"
            wait_docker 30 "$pid" || die "dockerd (pid $pid) did not answer within 30 s (log: $DOCKERD_LOG)"
        else
            say "docker daemon: starting dockerd (log $DOCKERD_LOG, pid file $DOCKERD_PIDFILE)"
            start_detached_dockerd
        fi
    fi
    [[ $(daemon_runsc) == "$(file_runsc)" ]] ||
        die "the running docker daemon does not have the runsc runtime from $DAEMON_JSON; restart it by hand"
}

# ---------------------------------------------------------------------------------------------------
# 4. base image
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# mmdebstrap mirror arguments: the host's Debian bookworm apt sources when there are any.
debian_mirror_args() {
    if [[ -n ${FNBOX_DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "$FNBOX_DEBIAN_MIRROR"
        return
    fi
    local f line found=0
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        if grep -qE '^Suites:.*\bbookworm\b' "$f" && grep -qiE '^URIs:.*debian' "$f"; then
            printf '%s\n' "$f"
            found=1
        fi
    done
    ((found)) && return
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        while IFS= read -r line; do
            printf '%s\n' "$line"
            found=1
        done < <(grep -E '^deb[[:space:]].*debian.*[[:space:]]bookworm(-updates|-security|/updates)?[[:space:]]' "$f" || true)
    done
    # nothing found: no argument, mmdebstrap then uses deb.debian.org (+ updates and security)
}

step_base_image() {
    if [[ ${FNBOX_PULL_BASE:-0} == 1 ]]; then
        say "base image: FNBOX_PULL_BASE=1, runtime images build FROM python:3.12-slim / node:20-slim"
        return
    fi
    if image_exists "$BASE_IMAGE"; then
        say "base image: $BASE_IMAGE already present"
        return
    fi
    have_cmd mmdebstrap || die "mmdebstrap not found"
    local t0 tmp mirrors=() aptopts=()
    t0=$(now_s)
    mapfile -t mirrors < <(debian_mirror_args)
    if apt-config dump 2>/dev/null | grep -q '^Acquire::Check-Valid-Until "false";'; then
        aptopts+=(--aptopt='Acquire::Check-Valid-Until "false"')
    fi
    say "base image: building $BASE_IMAGE with mmdebstrap (mirror: ${mirrors[*]:-default}), takes about a minute"
    tmp=$(mktemp -d /var/tmp/fnbox-base.XXXXXX)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    if ! mmdebstrap --variant=essential --include=python3,nodejs,ca-certificates \
        "${aptopts[@]}" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$tmp/rootfs.tar" "${mirrors[@]}" >"$tmp/mmdebstrap.log" 2>&1; then
        tail -n 40 "$tmp/mmdebstrap.log" >&2
        die "mmdebstrap failed"
    fi
    docker import --change 'CMD ["/bin/sh"]' --change 'LABEL fnbox.base=mmdebstrap-bookworm' \
        "$tmp/rootfs.tar" "$BASE_IMAGE" >/dev/null
    rm -rf "$tmp"
    trap - EXIT
    say "base image: $BASE_IMAGE imported in $(elapsed_since "$t0") s"
}

# ---------------------------------------------------------------------------------------------------
# 5. runtime images
base_for() { # $1 = lang
    if [[ ${FNBOX_PULL_BASE:-0} == 1 ]]; then
        case $1 in
        python) echo python:3.12-slim ;;
        node) echo node:20-slim ;;
        esac
    else
        echo "$BASE_IMAGE"
    fi
}

runtime_hash() { # $1 = lang, $2 = base reference
    local dir="$ROOT/runtimes/$1"
    {
        (cd "$dir" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*/node_modules/*' -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum)
        echo "base $2"
    } | sha256sum | cut -c1-32
}

step_runtime_image() {
    local lang=$1 image="fnbox-$1:latest" base base_ref hash cur old_id t0 log
    [[ -f $ROOT/runtimes/$lang/Dockerfile ]] || die "missing runtimes/$lang/Dockerfile"
    base=$(base_for "$lang")
    if [[ ${FNBOX_PULL_BASE:-0} == 1 ]]; then
        base_ref="pull:$base"
    else
        base_ref=$(docker image inspect -f '{{.Id}}' "$base")
    fi
    hash=$(runtime_hash "$lang" "$base_ref")
    cur=$(docker image inspect -f '{{index .Config.Labels "fnbox.hash"}}' "$image" 2>/dev/null || true)
    if [[ $cur == "$hash" ]]; then
        say "image $image: already up to date (hash $hash)"
        return
    fi
    old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
    t0=$(now_s)
    log=$(mktemp /tmp/fnbox-build-"$lang".XXXXXX)
    local pull=()
    [[ ${FNBOX_PULL_BASE:-0} == 1 ]] && pull=(--pull)
    if ! docker build "${pull[@]}" -t "$image" --build-arg "BASE=$base" --build-arg "FNBOX_HASH=$hash" \
        "$ROOT/runtimes/$lang" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        die "docker build of $image failed"
    fi
    rm -f "$log"
    # drop the superseded image when nothing else uses it
    if [[ -n $old_id && $old_id != "$(docker image inspect -f '{{.Id}}' "$image")" ]]; then
        docker image rm "$old_id" >/dev/null 2>&1 || true
    fi
    if [[ -z $cur ]]; then
        say "image $image: built (hash $hash) in $(elapsed_since "$t0") s"
    else
        say "image $image: rebuilt, runtimes/$lang changed (hash $cur -> $hash) in $(elapsed_since "$t0") s"
    fi
}

# ---------------------------------------------------------------------------------------------------
# 6. smoke check
SMOKE_PY='def handler(event, context):
    print("smoke log")
    return "Hello, " + event["name"] + "!"
'
SMOKE_JS='exports.handler = async (event, context) => {
  console.log("smoke log");
  return "Hello, " + event.name + "!";
};
'

smoke_one() { # $1 = lang, $2 = runtime, $3 = work dir; writes $3/<lang>-<rt>.{out,err,status}
    local lang=$1 rt=$2 dir=$3 code load invoke name deadline rc=0
    local base="$dir/$lang-$rt"
    case $lang in
    python) code=$SMOKE_PY ;;
    node) code=$SMOKE_JS ;;
    esac
    deadline=$(($(date +%s) * 1000 + 60000))
    load=$(jq -nc --arg c "$code" '{type:"load",code:$c,handler:"handler",env:{FNBOX_SMOKE:"1"},max_output_bytes:6291456,max_log_bytes:262144}')
    invoke=$(jq -nc --argjson d "$deadline" '{type:"invoke",id:"smoke-1",event:{name:"smoke"},
        context:{execution_id:"smoke-1",function:"smoke",version:1,memory_mb:128,timeout_ms:5000,deadline_ms:$d}}')
    name="fnbox-smoke-$lang-$rt-$$"
    # stdin closes after the two messages: the bootstrap answers both, sees EOF and exits 0
    printf '%s\n%s\n' "$load" "$invoke" |
        timeout 120 "$(docker_bin)" run --rm -i --name "$name" \
            --network none --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
            --user 65534:65534 --memory 256m --runtime "$rt" --cidfile "$base.cid" "fnbox-$lang:latest" \
            >"$base.out" 2>"$base.err" || rc=$?
    echo "$rc" >"$base.status"
    # never leave a container (and its runsc sandbox) behind
    docker rm -f "$name" >/dev/null 2>&1 || true
}

smoke_verdict() { # $1 = out file, $2 = rc; prints a reason and returns 1 on failure
    local out=$1 rc=$2
    [[ $rc == 0 ]] || {
        echo "exit status $rc"
        return 1
    }
    jq -e -s '.[0].type == "ready"' "$out" >/dev/null 2>&1 || {
        echo "no ready message"
        return 1
    }
    jq -e -s 'map(select(.type == "loaded")) | length == 1' "$out" >/dev/null 2>&1 || {
        echo "load failed"
        return 1
    }
    jq -e -s 'map(select(.type == "result" and .id == "smoke-1")) | .[0]
        | .status == "success" and .output == "Hello, smoke!" and (.logs | contains("smoke log"))' \
        "$out" >/dev/null 2>&1 || {
        echo "wrong result"
        return 1
    }
}

step_smoke() {
    local dir lang rt fail=0 pids=() reason t0 n
    if [[ -z ${FNBOX_SMOKE_RUNTIMES:-} && -n $RUNSC_NEW_PATH ]]; then
        SMOKE_RUNTIMES="$SMOKE_RUNTIMES $RUNSC_NEW_NAME"
    fi
    dir=$(mktemp -d /tmp/fnbox-smoke.XXXXXX)
    t0=$(now_s)
    for lang in python node; do
        for rt in $SMOKE_RUNTIMES; do
            smoke_one "$lang" "$rt" "$dir" &
            pids+=($!)
        done
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    for lang in python node; do
        for rt in $SMOKE_RUNTIMES; do
            local b="$dir/$lang-$rt"
            if reason=$(smoke_verdict "$b.out" "$(cat "$b.status")"); then
                say "smoke check fnbox-$lang:latest under $rt: pass ($(jq -r -s 'map(select(.type=="ready"))[0] | .language + " " + .runtime_version' "$b.out"))"
            else
                fail=1
                say "smoke check fnbox-$lang:latest under $rt: FAIL ($reason)"
                {
                    echo "---- protocol output:"
                    cat "$b.out"
                    echo "---- stderr:"
                    cat "$b.err"
                } >&2
            fi
        done
    done
    # leftovers: our containers, and runsc sandbox/gofer processes of them (they go away with the container)
    n=$(docker ps -aq --filter "name=fnbox-smoke-.*-$$" | wc -l)
    if ((n > 0)); then
        say "smoke check: FAIL: $n fnbox-smoke containers left"
        fail=1
    fi
    local cid left=0 i
    for f in "$dir"/*-runsc.cid; do
        [[ -s $f ]] || continue
        cid=$(cat "$f")
        for ((i = 0; i < 50; i++)); do
            pgrep -f -- "runsc.*$cid" >/dev/null 2>&1 || break
            sleep 0.1
        done
        if pgrep -f -- "runsc.*$cid" >/dev/null 2>&1; then
            left=$((left + 1))
        fi
    done
    if ((left > 0)); then
        say "smoke check: FAIL: runsc processes of $left smoke containers are still running"
        fail=1
    fi
    rm -rf "$dir"
    ((fail == 0)) || die "smoke check failed"
    say "smoke check: all passed in $(elapsed_since "$t0") s"
}
