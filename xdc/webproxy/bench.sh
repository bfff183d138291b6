#!/usr/bin/env bash
# Benchmarks the XDC web proxy against JupyterHub's configurable-http-proxy (CHP) in front of
# the same backend. Installs wrk (Debian) and CHP (npm, into a cache directory) when missing,
# builds the benchmark in release mode and runs it. Extra arguments go to the benchmark, e.g.
#   xdc/webproxy/bench.sh --reps 3 --duration 5
#   xdc/webproxy/bench.sh --backend jupyter      # a real Jupyter behind both proxies
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v wrk >/dev/null || missing+=(wrk)
# Node may come with the machine (a newer build than Debian's); Debian's is the fallback.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 5.x needs Node >= 20; 4.6.3 runs on older Node and behaves the same for this test.
if node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)'; then CHP_VERSION=5.3.0; else CHP_VERSION=4.6.3; fi
CHP_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/trellis/configurable-http-proxy-$CHP_VERSION"
CHP="$CHP_DIR/node_modules/configurable-http-proxy/bin/configurable-http-proxy"
if [ ! -f "$CHP" ]; then
  echo "bench: installing configurable-http-proxy $CHP_VERSION into $CHP_DIR"
  mkdir -p "$CHP_DIR"
  npm install --silent --no-audit --no-fund --prefix "$CHP_DIR" "configurable-http-proxy@$CHP_VERSION" >/dev/null
fi

cargo build --release -p trellis-xdc-proxy --bin trellis-xdc-proxy-bench
exec target/release/trellis-xdc-proxy-bench --chp "$CHP" "$@"
