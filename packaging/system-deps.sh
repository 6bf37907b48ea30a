#!/usr/bin/env bash
# System packages the build (`system-deps.sh build`: a C compiler and the Python headers for the
# extractor's compiled kernel) or the test suite and benchmark use; installs only what is missing.
set -euo pipefail
PY=${PY:-python3}
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have gcc || need+=(gcc)
"$PY" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || need+=("python3-dev")
if [ "${1:-all}" != build ]; then
have tshark || need+=(tshark)
have editcap || need+=(wireshark-common)
have tcprewrite || need+=(tcpreplay)
have rsyslogd || need+=(rsyslog)
have tcpdump || need+=(tcpdump)
have systemd-analyze || need+=(systemd)
have ip || need+=(iproute2)
have nmap || need+=(nmap)
have hping3 || need+=(hping3)
have dpkg-deb || need+=(dpkg)
have pkg-config || need+=(pkg-config)
pkg-config --exists libsystemd 2>/dev/null || need+=(libsystemd-dev)
fi
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}" >/dev/null
