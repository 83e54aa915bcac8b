#!/usr/bin/env bash
# Make sure headless Chromium is there for the UI test (it screenshots the asset graph page).
# Installs Debian's `chromium` package when missing. Idempotent.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "ensure-chromium: installing chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
