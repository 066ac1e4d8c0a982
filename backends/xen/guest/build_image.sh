#!/usr/bin/env bash
# Builds the Xen-under-QEMU test image: the Xen 4.17 hypervisor (xen.elf, which QEMU's
# multiboot loader boots), Debian's full kernel (linux-image-amd64: the cloud kernel cannot be
# dom0) and two busybox-static initramfs:
#   dom0.gz  /init (guest/dom0-init), the Xen tools dom0 needs (xenstored, xen-init-dom0, xl,
#            xenconsoled, xenstore-read/write) with their shared libraries (from ldd, plus
#            libgcc_s.so.1 that xl loads at run time), the xen modules, the vif hotplug script
#            (guest/ivmc-vif), ivmc-xen-agent, and inside it the domU's kernel and initramfs
#   domu.gz  /init (guest/domu-init), the agent and the modules a domU needs
#
# Usage: build_image.sh --agent PATH --out DIR [--cache DIR]
# Writes DIR/xen.elf, DIR/vmlinuz, DIR/dom0.gz and DIR/image.env (XEN=, KERNEL=, INITRD=).
# Exit 77 ("SKIP: why") when the image cannot be had: a package neither downloadable nor
# cached, or busybox-static/cpio missing (the vm tests then skip with that reason).
#
# Caching: each Debian package is fetched once per version with `apt-get download` and unpacked
# with `dpkg-deb -x` (nothing is installed, no maintainer script runs: the host's boot loader
# is untouched) under CACHE/xen/<package>_<version>; of the kernel only vmlinuz and the needed
# modules are kept. The initramfs are rebuilt only when the agent, the scripts or the packages
# changed (their hashes are the key in DIR/image.key). Offline, the newest cached version is used.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
agent="" out="" cache="${IVMC_CACHE:-${HOME:-/root}/.cache/ivmc}"
while (($#)); do
  case "$1" in
    --agent) agent=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    *) echo "build_image.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -n "$agent" && -n "$out" ]] || { echo "usage: build_image.sh --agent PATH --out DIR" >&2; exit 2; }
[[ -x "$agent" ]] || { echo "build_image.sh: agent '$agent' is not an executable" >&2; exit 1; }
busybox=/bin/busybox
[[ -x "$busybox" ]] && "$busybox" --list | grep -x depmod >/dev/null ||
  { echo "SKIP: build_image.sh: needs busybox-static (scripts/deps.sh test)" >&2; exit 77; }
command -v cpio >/dev/null || { echo "SKIP: build_image.sh: needs cpio (scripts/deps.sh test)" >&2; exit 77; }

dom0_modules=(xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-netback)
domu_modules=(xen-evtchn xen-gntdev xen-gntalloc xen-netfront)
tools=(xenstored xen-init-dom0 xl xenconsoled libxl-save-helper) # the helper: xl save and xl restore
xen_version=4.17

mkdir -p "$out" "$cache/xen"
out=$(cd "$out" && pwd)
exec 8>"$cache/xen/.lock"
flock 8 # one download/unpack at a time

# fetch PACKAGE [KEEP]: unpacks PACKAGE's current version into CACHE/xen/<package>_<version>
# (KEEP: a function that trims the tree before it is kept) and prints that directory.
fetch() {
  local pkg=$1 keep=${2:-} ver dir tmp
  ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}') || true
  # The newest complete cached version, for when the current one cannot be had.
  cached() {
    local d
    d=$(ls -td "$cache/xen/${pkg}_"*/ 2>/dev/null | head -1 || true)
    d=${d%/}
    [[ -n "$d" && -f "$d/.complete" ]] || return 1
    echo "build_image.sh: $1; using the cached $(basename "$d")" >&2
    echo "$d"
  }
  if [[ -z "$ver" ]]; then
    cached "apt-cache knows no $pkg" ||
      { echo "SKIP: build_image.sh: apt-cache knows no $pkg and nothing is cached (apt-get update?)" >&2; exit 77; }
    return 0
  fi
  dir="$cache/xen/${pkg}_${ver}"
  if [[ ! -f "$dir/.complete" ]]; then
    tmp=$(mktemp -d "$cache/xen/.fetch.XXXXXX")
    echo "build_image.sh: fetching $pkg $ver" >&2
    if ! (cd "$tmp" && apt-get download -q "$pkg=$ver" 2>&1 |
          grep -v "^W: Download is performed unsandboxed" >&2; [[ -n "$(ls "$tmp"/*.deb 2>/dev/null)" ]]); then
      rm -rf "$tmp"
      cached "apt-get download $pkg=$ver failed (offline?)" && return 0
      echo "SKIP: build_image.sh: apt-get download $pkg=$ver failed (offline?) and nothing is cached" >&2; exit 77
    fi
    dpkg-deb -x "$tmp"/*.deb "$tmp/root"
    [[ -n "$keep" ]] && "$keep" "$tmp/root"
    rm -rf "$dir" && mv "$tmp/root" "$dir" && rm -rf "$tmp"
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# The kernel: vmlinuz and the modules both initramfs load (with what they depend on), then
# modules.dep by busybox depmod. Everything else (hundreds of MiB) goes.
trim_kernel() {
  local root=$1 kver src keep
  kver=$(ls "$root/lib/modules")
  src="$root/lib/modules/$kver"
  keep=$(mktemp -d)
  declare -A done_mods=()
  add_module() { # NAME: copies NAME.ko and, first, what it depends on
    local name=$1 file dep
    [[ -n "${done_mods[$name]:-}" ]] && return 0
    done_mods[$name]=1
    file=$(find "$src/kernel" \( -name "$name.ko" -o -name "${name//-/_}.ko" -o -name "${name//_/-}.ko" \) -print -quit)
    [[ -n "$file" ]] || { echo "build_image.sh: module $name is not in the kernel package" >&2; exit 1; }
    for dep in $(strings -a "$file" | sed -n 's/^depends=//p' | tr ',' ' '); do add_module "$dep"; done
    mkdir -p "$keep/lib/modules/$kver/$(dirname "${file#"$src/"}")"
    cp "$file" "$keep/lib/modules/$kver/${file#"$src/"}"
  }
  for m in "${dom0_modules[@]}" "${domu_modules[@]}"; do add_module "$m"; done
  cp "$src/modules.builtin" "$keep/lib/modules/$kver/" 2>/dev/null || true
  "$busybox" depmod -b "$keep" "$kver"
  cp "$root/boot/vmlinuz-$kver" "$keep/vmlinuz"
  echo "$kver" >"$keep/kernel_version"
  rm -rf "${root:?}"/* && cp -a "$keep"/. "$root/" && rm -rf "$keep"
}

# The hypervisor: only xen.elf (QEMU boots the ELF, not the .gz).
trim_hypervisor() {
  local root=$1
  zcat "$root/boot/xen-$xen_version-amd64.gz" >"$root/xen.elf.new"
  rm -rf "${root:?}/boot" "${root:?}/usr" && mv "$root/xen.elf.new" "$root/xen.elf"
}

kpkg=$(apt-cache depends --important linux-image-amd64 2>/dev/null |
       awk '/Depends: linux-image-/ {print $2; exit}') || true
if [[ -z "$kpkg" ]]; then
  kpkg=$(basename "$(ls -td "$cache"/xen/linux-image-*-amd64_*/ 2>/dev/null | head -1)" | sed 's/_.*//') || true
fi
[[ -n "$kpkg" ]] || { echo "SKIP: build_image.sh: cannot tell which kernel linux-image-amd64 is (apt-get update?)" >&2; exit 77; }
kdir=$(fetch "$kpkg" trim_kernel)
hdir=$(fetch "xen-hypervisor-$xen_version-amd64" trim_hypervisor)
udir=$(fetch "xen-utils-$xen_version")
sdir=$(fetch xenstore-utils)
exec 8>&-
kver=$(cat "$kdir/kernel_version")

# --- the initramfs ---------------------------------------------------------------------------
exec 9>"$out/.lock"
flock 9
key=$(cat "$agent" "$here/dom0-init" "$here/domu-init" "$here/ivmc-vif" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-64)
key="$key $(basename "$kdir") $(basename "$hdir") $(basename "$udir") $(basename "$sdir")"
if [[ ! -f "$out/dom0.gz" || "$(cat "$out/image.key" 2>/dev/null)" != "$key" ]]; then
  stage=$(mktemp -d "$out/.stage.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  pack() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$2"; }
  base() { # DIR INIT MODULES...: busybox, /init, the agent, the named modules
    local dir=$1 init=$2; shift 2
    mkdir -p "$dir"/{bin,dev,proc,sys,run,tmp,lib/modules/"$kver"}
    cp "$busybox" "$dir/bin/busybox"
    cp "$init" "$dir/init" && chmod 755 "$dir/init"
    strip --strip-all -o "$dir/ivmc-xen-agent" "$agent"
    local m f
    for m in "$@"; do # the module and its dependencies, as depmod listed them
      f=$(cd "$kdir/lib/modules/$kver" && find kernel \( -name "$m.ko" -o -name "${m//-/_}.ko" \) -print -quit)
      for dep in $f $(awk -v f="$f:" '$1 == f {for (i = 2; i <= NF; i++) print $i}' "$kdir/lib/modules/$kver/modules.dep"); do
        mkdir -p "$dir/lib/modules/$kver/$(dirname "$dep")"
        cp "$kdir/lib/modules/$kver/$dep" "$dir/lib/modules/$kver/$dep"
      done
    done
    cp "$kdir/lib/modules/$kver/modules.builtin" "$dir/lib/modules/$kver/" 2>/dev/null || true
    "$busybox" depmod -b "$dir" "$kver"
  }

  # domU
  base "$stage/domu" "$here/domu-init" "${domu_modules[@]}"
  pack "$stage/domu" "$stage/domu.gz"

  # dom0
  d0="$stage/dom0"
  base "$d0" "$here/dom0-init" "${dom0_modules[@]}"
  mkdir -p "$d0/usr/lib/xen-$xen_version/bin" "$d0/usr/bin" "$d0/etc/xen/scripts" "$d0/boot" \
           "$d0/lib64" "$d0/lib/x86_64-linux-gnu" "$d0/var"
  for t in "${tools[@]}"; do cp "$udir/usr/lib/xen-$xen_version/bin/$t" "$d0/usr/lib/xen-$xen_version/bin/"; done
  cp "$sdir/usr/bin/xenstore" "$d0/usr/bin/xenstore"
  for t in xenstore-read xenstore-write xenstore-ls xenstore-rm; do ln -s xenstore "$d0/usr/bin/$t"; done
  cp "$here/ivmc-vif" "$d0/etc/xen/scripts/ivmc-vif" && chmod 755 "$d0/etc/xen/scripts/ivmc-vif"
  # Shared libraries: the host's (libxen-dev pulled in the same Xen version's libraries).
  libs=$( (for t in "${tools[@]}"; do ldd "$udir/usr/lib/xen-$xen_version/bin/$t"; done; ldd "$sdir/usr/bin/xenstore") |
          awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  missing=$( (for t in "${tools[@]}"; do ldd "$udir/usr/lib/xen-$xen_version/bin/$t"; done) | grep "not found" || true)
  [[ -z "$missing" ]] || { echo "build_image.sh: libraries missing on this host (scripts/deps.sh build installs libxen-dev):" >&2; echo "$missing" >&2; exit 1; }
  for l in $libs /lib/x86_64-linux-gnu/libgcc_s.so.1; do
    case "$l" in
      */ld-linux-x86-64.so.2) cp -L "$l" "$d0/lib64/ld-linux-x86-64.so.2" ;;
      *) cp -L "$l" "$d0/lib/x86_64-linux-gnu/$(basename "$l")" ;;
    esac
  done
  cp "$kdir/vmlinuz" "$d0/boot/vmlinuz"
  cp "$stage/domu.gz" "$d0/boot/domu.gz"
  pack "$d0" "$out/dom0.gz.new"
  mv "$out/dom0.gz.new" "$out/dom0.gz"
  echo "$key" >"$out/image.key"
  rm -rf "$stage"
  trap - EXIT
fi
ln -sfn "$kdir/vmlinuz" "$out/vmlinuz"
ln -sfn "$hdir/xen.elf" "$out/xen.elf"
printf 'XEN=%s\nKERNEL=%s\nINITRD=%s\nKERNEL_VERSION=%s\n' "$out/xen.elf" "$out/vmlinuz" "$out/dom0.gz" "$kver" |
  tee "$out/image.env"
