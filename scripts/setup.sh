#!/usr/bin/env bash
# Installs everything Trellis needs on Debian 12, idempotently:
#   - Debian packages: etcd (tests, multi-node), protoc (etcd-client's build), OpenSSH client, Python venv.
#   - A Python venv at .venv with the real MergeTB client libraries, for the compatibility tests.
# Safe to run again: each step checks first and does nothing when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(etcd-server etcd-client protobuf-compiler libprotobuf-dev openssh-client openssl python3-venv curl ca-certificates)
# Pinned: the versions the compatibility tests are written against.
PY_PACKAGES=(mergetbapi==1.6.0 mergetb==1.3.16 mergexp==0.3.0 pytest==8.3.4)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's etcd-server package starts a system etcd on the default ports; Trellis starts its own
# on free ports, so the system one is not needed (and would hold port 2379).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  sudo_if_needed systemctl disable --now etcd >/dev/null 2>&1 || true
fi

VENV=.venv
want="${PY_PACKAGES[*]}"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.trellis-packages" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating the Python venv $VENV with ${PY_PACKAGES[*]}"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "$want" > "$VENV/.trellis-packages"
fi
echo "setup: done"
