#!/usr/bin/env bash
# The browser check: renders a campaign report in headless Chromium and fails on any
# script error (sim/tests/report_browser.rs, the test `cargo test` leaves out because a
# fresh machine has no Chromium). Installs Debian's `chromium` first when it is missing
# (needs root or sudo and apt-get); elsewhere install Chromium yourself and re-run.
# Usage: scripts/browser-check.sh        (from anywhere; CI runs it from .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

have_chromium() { [ -x /usr/bin/chromium ] || [ -x /usr/bin/chromium-browser ]; }

if ! have_chromium; then
  if ! command -v apt-get >/dev/null; then
    echo "Chromium is missing and there is no apt-get here: install Chromium (/usr/bin/chromium) and re-run $0" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "Chromium is missing: run 'apt-get install chromium' as root, then re-run $0" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "== installing Debian's chromium (apt-get install chromium)"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  have_chromium || { echo "apt-get installed no /usr/bin/chromium" >&2; exit 1; }
fi

echo "== the browser check (sim/tests/report_browser.rs, ignored by a plain cargo test)"
exec cargo test -p mimi-sim --test report_browser -- --ignored
