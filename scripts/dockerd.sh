#!/usr/bin/env bash
# Stops or starts the Docker daemon the way scripts/setup.sh started it (systemd's docker.service, or
# the detached dockerd whose pid setup.sh recorded). Used by the dockerd-restart test.
#   scripts/dockerd.sh stop|start
# Refuses to touch a daemon that neither systemd nor setup.sh started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib-setup.sh
source "$ROOT/scripts/lib-setup.sh"

case ${1:-} in
stop)
    if systemd_docker && systemctl is-active --quiet docker; then
        say "docker daemon: stopping docker.service"
        systemctl stop docker docker.socket 2>/dev/null || systemctl stop docker
    elif pid=$(our_dockerd_pid); then
        say "docker daemon: stopping our dockerd (pid $pid)"
        stop_our_dockerd "$pid"
    elif docker_answers; then
        die "a docker daemon runs that neither systemd nor setup.sh started; not stopping it"
    else
        say "docker daemon: not running"
    fi
    ;;
start)
    step_dockerd
    ;;
*)
    die "usage: $0 stop|start"
    ;;
esac
