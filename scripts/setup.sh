#!/usr/bin/env bash
# fnbox host setup: docker + gVisor (runsc), the Debian base image and the language runtime images.
#
# Runs as root on Debian/Ubuntu. Idempotent: a second run only checks and prints "already ...".
# Steps:
#   1. apt packages (docker.io runsc mmdebstrap jq), apt-get update only when something is missing
#   1b. a newer runsc beside bookworm's (Debian trixie's, pinned; FNBOX_SKIP_NEWER_RUNSC=1 skips it)
#   2. register runsc (and the newer one as runsc-20240729) in /etc/docker/daemon.json (merged)
#   3. start dockerd when no daemon answers (systemd if available, else a detached dockerd)
#   4. base image fnbox-base:bookworm (mmdebstrap rootfs + docker import), unless present
#   5. runtime images fnbox-python:latest / fnbox-node:latest, rebuilt when runtimes/<lang>/ changed
#   6. smoke check: load + invoke a hello handler in each image under runc and runsc
#
# Environment knobs:
#   FNBOX_PULL_BASE=1      build the runtime images FROM python:3.12-slim / node:20-slim (needs a registry)
#   FNBOX_DEBIAN_MIRROR=X  mirror argument(s) for mmdebstrap (URI, "deb ..." line or sources file)
#   FNBOX_SKIP_SMOKE=1     skip step 6
#   FNBOX_SMOKE_RUNTIMES   runtimes to smoke-check (default "runc runsc")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib-setup.sh
source "$ROOT/scripts/lib-setup.sh"

export DEBIAN_FRONTEND=noninteractive
export DOCKER_BUILDKIT=0 # classic builder: buildx is usually not installed next to docker.io

if [[ $(id -u) -ne 0 ]]; then
    die "must run as root"
fi

T0=$(now_s)

step_apt_packages
step_runsc_newer
step_daemon_json
step_dockerd
step_base_image
step_runtime_image python
step_runtime_image node
if [[ ${FNBOX_SKIP_SMOKE:-0} == 1 ]]; then
    say "smoke check: skipped (FNBOX_SKIP_SMOKE=1)"
else
    step_smoke
fi

say "done in $(elapsed_since "$T0") s"
