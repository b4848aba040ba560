#!/usr/bin/env bash
# What only the test suite needs on the host: Chromium and ChromeDriver for the browser test.
# Idempotent and quick when they are already there.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ((${#missing[@]} == 0)); then
    echo "[test-deps] chromium and chromedriver: already installed"
    exit 0
fi
echo "[test-deps] installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[test-deps] installed: $(chromium --version 2>/dev/null), $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
