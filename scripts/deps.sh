#!/usr/bin/env bash
# Installs the Debian packages ivmc builds and tests with, only those missing (idempotent).
# Usage: scripts/deps.sh [build|test]   ("test" adds what the test suite needs on top of the build)
set -euo pipefail
want=(cmake g++ ninja-build pkg-config catch2 libfmt-dev libcli11-dev libtomlplusplus-dev
      libboost-graph-dev libsimgrid-dev pybind11-dev python3-dev python3-numpy python3-pandas
      python3-matplotlib python3-scipy libxen-dev) # libxen-dev: the Xen backend (backends/xen)
want+=(libiceoryx-posh-dev iceoryx) # ivmc bench's iceoryx baseline: the library and iox-roudi
if [[ "${1:-build}" == test ]]; then
  want+=(clang libclang-rt-14-dev python3-pytest python3-distributed)
  want+=(python3-nbclient python3-nbformat python3-ipykernel) # notebooks, run headless
  want+=(qemu-system-x86 busybox-static cpio) # the vm label: QEMU guests (backends/kvm/guest)
  # Unmodified programs under `ivmc exec` (issue 17: tests/preload, scripts/apps_bench.sh).
  want+=(iperf3 sockperf redis-server redis-tools)
  # The vm label's Xen boot fetches Xen, its tools and the dom0 kernel itself (apt-get download,
  # unpacked into ~/.cache/ivmc: never installed, so the host's boot loader is left alone).
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
echo "ivmc: installing missing Debian packages: ${missing[*]}" >&2
sudo=""
((EUID == 0)) || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
