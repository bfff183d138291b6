#!/usr/bin/env bash
# Installs the benchmark's peers (nginx, HAProxy, wrk) if missing, builds the benchmark in
# release mode, and runs it. Extra arguments go to `trellis-ingress-bench run`, e.g.
#   ingress/bench/run.sh --reps 3 --duration 10
set -euo pipefail
cd "$(dirname "$0")/../.."

PACKAGES=(nginx-light haproxy wrk)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts system nginx and HAProxy services on install; the benchmark runs its own.
if command -v systemctl >/dev/null 2>&1; then
  for unit in nginx haproxy; do
    systemctl is-active --quiet "$unit" 2>/dev/null && systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi

cargo build --release -p trellis-ingress-bench
exec target/release/trellis-ingress-bench run "$@"
