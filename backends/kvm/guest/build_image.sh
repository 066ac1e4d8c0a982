#!/usr/bin/env bash
# Builds the ivmc test guest: Debian's cloud kernel and a busybox-static initramfs holding
# /init (guest/init), the ivmc-guest agent (static) and the kernel modules that interrupt mode
# (vfio-pci, vfio_iommu_type1) and guest networking (virtio_pci, virtio_net) need.
#
# Usage: build_image.sh --agent PATH --out DIR [--cache DIR] [--package NAME]
#   --agent    the ivmc-guest binary to put in the image
#   --out      where vmlinuz (a symlink into the cache), initrd.gz and image.env are written
#   --cache    kernel cache (default: ${IVMC_CACHE:-~/.cache/ivmc})
#   --package  the kernel metapackage (default linux-image-cloud-amd64)
# Prints "KERNEL=... INITRD=... KERNEL_VERSION=..." (also written to DIR/image.env).
#
# Caching: the kernel package is fetched once per version with `apt-get download` and unpacked
# with `dpkg-deb -x` (no install scripts run); only vmlinuz and the needed modules are kept,
# under CACHE/kernel/<package>_<version>. The initramfs is rebuilt only when the agent, /init,
# this script or the kernel changed (their hashes are the key in DIR/image.key). Offline, the
# newest cached kernel is used.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
agent="" out="" cache="${IVMC_CACHE:-${HOME:-/root}/.cache/ivmc}" meta=linux-image-cloud-amd64
while (($#)); do
  case "$1" in
    --agent) agent=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --package) meta=$2; shift 2 ;;
    *) echo "build_image.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -n "$agent" && -n "$out" ]] || { echo "usage: build_image.sh --agent PATH --out DIR" >&2; exit 2; }
[[ -x "$agent" ]] || { echo "build_image.sh: agent '$agent' is not an executable" >&2; exit 1; }
busybox=/bin/busybox
[[ -x "$busybox" ]] && "$busybox" --list | grep -x depmod >/dev/null ||
  { echo "build_image.sh: needs busybox-static (scripts/deps.sh test)" >&2; exit 1; }
command -v cpio >/dev/null || { echo "build_image.sh: needs cpio (scripts/deps.sh test)" >&2; exit 1; }

# The modules the guest may load, with their dependencies found from each .ko's modinfo.
modules=(vfio-pci vfio_iommu_type1 virtio_pci virtio_net)

mkdir -p "$out" "$cache/kernel"
out=$(cd "$out" && pwd)
exec 8>"$cache/kernel/.lock"
flock 8 # one download/unpack at a time

# --- the kernel: the versioned package the metapackage depends on --------------------------
pkg=$(apt-cache depends --important "$meta" 2>/dev/null |
      awk '/Depends: linux-image-/ {print $2; exit}') || true
ver=""
[[ -n "$pkg" ]] && ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null |
                         awk '/^Version:/ {print $2; exit}') || true
if [[ -n "$pkg" && -n "$ver" ]]; then
  kdir="$cache/kernel/${pkg}_${ver}"
else
  kdir=$(ls -td "$cache"/kernel/linux-image-*/ 2>/dev/null | head -1 || true)
  kdir=${kdir%/}
  [[ -n "$kdir" && -f "$kdir/.complete" ]] ||
    { echo "build_image.sh: apt-cache knows no $meta and nothing is cached (apt-get update?)" >&2; exit 1; }
  echo "build_image.sh: apt-cache knows no $meta; using the cached $(basename "$kdir")" >&2
fi

if [[ ! -f "$kdir/.complete" ]]; then
  tmp=$(mktemp -d "$cache/kernel/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "build_image.sh: fetching $pkg $ver" >&2
  (cd "$tmp" && apt-get download -q "$pkg=$ver" 2>&1 | grep -v "^W: Download is performed unsandboxed" >&2) ||
    { echo "build_image.sh: apt-get download $pkg=$ver failed" >&2; exit 1; }
  dpkg-deb -x "$tmp"/*.deb "$tmp/root"
  kver=$(ls "$tmp/root/lib/modules")
  rm -rf "$kdir.new" && mkdir -p "$kdir.new/lib/modules/$kver"
  cp "$tmp/root/boot/vmlinuz-$kver" "$kdir.new/vmlinuz"
  src="$tmp/root/lib/modules/$kver"
  declare -A done_mods=()
  add_module() { # NAME: copies NAME.ko and, first, what it depends on
    local name=$1 file dep
    [[ -n "${done_mods[$name]:-}" ]] && return 0
    done_mods[$name]=1
    file=$(find "$src/kernel" \( -name "$name.ko" -o -name "${name//-/_}.ko" -o -name "${name//_/-}.ko" \) -print -quit)
    [[ -n "$file" ]] || { echo "build_image.sh: module $name is not in $pkg" >&2; exit 1; }
    for dep in $(strings -a "$file" | sed -n 's/^depends=//p' | tr ',' ' '); do add_module "$dep"; done
    mkdir -p "$kdir.new/lib/modules/$kver/$(dirname "${file#"$src/"}")"
    cp "$file" "$kdir.new/lib/modules/$kver/${file#"$src/"}"
  }
  for m in "${modules[@]}"; do add_module "$m"; done
  cp "$src/modules.builtin" "$kdir.new/lib/modules/$kver/" 2>/dev/null || true
  "$busybox" depmod -b "$kdir.new" "$kver"
  echo "$kver" >"$kdir.new/kernel_version"
  touch "$kdir.new/.complete"
  rm -rf "$kdir" && mv "$kdir.new" "$kdir"
  rm -rf "$tmp"
  trap - EXIT
fi
exec 8>&-
kver=$(cat "$kdir/kernel_version")

# --- the initramfs ---------------------------------------------------------------------------
exec 9>"$out/.lock"
flock 9
key=$(cat "$agent" "$here/init" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-64)
key="$key $(basename "$kdir")"
if [[ ! -f "$out/initrd.gz" || "$(cat "$out/image.key" 2>/dev/null)" != "$key" ]]; then
  stage=$(mktemp -d "$out/.stage.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage"/{bin,dev,proc,sys,lib}
  cp "$busybox" "$stage/bin/busybox"
  cp "$here/init" "$stage/init" && chmod 755 "$stage/init"
  strip --strip-all -o "$stage/ivmc-guest" "$agent"
  cp -r "$kdir/lib/modules" "$stage/lib/"
  (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
    gzip -1 >"$out/initrd.gz.new"
  mv "$out/initrd.gz.new" "$out/initrd.gz"
  echo "$key" >"$out/image.key"
  rm -rf "$stage"
  trap - EXIT
fi
ln -sfn "$kdir/vmlinuz" "$out/vmlinuz"
printf 'KERNEL=%s\nINITRD=%s\nKERNEL_VERSION=%s\n' "$out/vmlinuz" "$out/initrd.gz" "$kver" |
  tee "$out/image.env"
