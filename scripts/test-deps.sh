#!/usr/bin/env bash
# What only the test suite needs on the host: Chromium and ChromeDriver for the browser test,
# PostgreSQL 15's server binaries for the store tests, nats-server and tinyproxy for the cluster tests, and a Python venv with an OpenAPI
# validator and schemathesis.
# Idempotent and quick when they are already there.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
export DEBIAN_FRONTEND=noninteractive
if ((${#missing[@]} == 0)); then
    echo "[test-deps] chromium and chromedriver: already installed"
else
    echo "[test-deps] installing ${missing[*]}"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "[test-deps] installed: $(chromium --version 2>/dev/null), $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
fi
# PostgreSQL 15's server binaries: the store tests start throwaway servers with them
# (crates/testkit). Only the binaries are used; no cluster is created or started here.
if [[ -x /usr/lib/postgresql/15/bin/initdb && -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
    echo "[test-deps] postgresql-15 server binaries: already installed"
else
    echo "[test-deps] installing postgresql-15"
    # Binaries only: no system-wide cluster created and started by the package.
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
fi
# nats-server (JetStream, clustering): the cluster transport tests and tests/cluster.rs start their own.
if command -v nats-server >/dev/null 2>&1; then
    echo "[test-deps] nats-server: already installed"
else
    echo "[test-deps] installing nats-server"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends nats-server >/dev/null
fi
# tinyproxy: scripts/cluster.sh (and so tests/cluster.rs) runs one as the cluster nodes' way out to
# PyPI and the npm registry. Its package's service is not started (the cluster starts its own).
if command -v tinyproxy >/dev/null 2>&1; then
    echo "[test-deps] tinyproxy: already installed"
else
    echo "[test-deps] installing tinyproxy"
    apt-get update -qq >/dev/null
    if [[ -e /usr/sbin/policy-rc.d ]]; then
        apt-get install -y -qq --no-install-recommends tinyproxy >/dev/null
    else
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        rc=0
        apt-get install -y -qq --no-install-recommends tinyproxy >/dev/null || rc=$?
        rm -f /usr/sbin/policy-rc.d
        ((rc == 0)) || exit "$rc"
    fi
fi
cd "$(dirname "$0")/.."

# A Python venv under target/ with what the API tests run from PyPI: the OpenAPI validator
# (tests/openapi.rs) and schemathesis, which fuzzes the API from its OpenAPI document (tests/fuzz.rs).
VENV=target/test-venv
PY_PACKAGES=(openapi-spec-validator "schemathesis>=4,<5")
if [[ -x $VENV/bin/python ]] && $VENV/bin/python -c "import openapi_spec_validator" 2>/dev/null \
    && [[ -x $VENV/bin/schemathesis ]]; then
    echo "[test-deps] openapi-spec-validator and schemathesis: already installed in $VENV"
else
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
        echo "[test-deps] installing python3-venv"
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        echo "[test-deps] creating $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    echo "[test-deps] installing ${PY_PACKAGES[*]} into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
    echo "[test-deps] $("$VENV/bin/schemathesis" --version 2>/dev/null | head -1)"
fi

# axe-core from npm, for the browser tests' accessibility check (tests/ui.rs injects it into
# each page). Pinned; installed under target/ like the venv.
AXE_VERSION=4.10.3
AXE_DIR=target/test-axe
if [[ -f $AXE_DIR/node_modules/axe-core/axe.min.js ]] && grep -q "\"version\": \"$AXE_VERSION\"" "$AXE_DIR/node_modules/axe-core/package.json"; then
    echo "[test-deps] axe-core $AXE_VERSION: already installed in $AXE_DIR"
else
    if ! command -v npm >/dev/null 2>&1; then
        echo "[test-deps] installing npm"
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    echo "[test-deps] installing axe-core $AXE_VERSION into $AXE_DIR"
    mkdir -p "$AXE_DIR"
    npm install --silent --no-audit --no-fund --prefix "$AXE_DIR" "axe-core@$AXE_VERSION" >/dev/null
fi
