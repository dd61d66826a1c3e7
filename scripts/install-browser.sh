#!/usr/bin/env bash
# Chromium for the browser test (Playwright drives Debian's chromium; it never downloads one).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser test..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium is not installed and this user cannot apt-get it: install chromium (Debian: apt-get install chromium) for the browser test." >&2
  exit 1
fi
