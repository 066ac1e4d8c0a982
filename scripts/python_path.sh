#!/usr/bin/env bash
# Makes `/usr/bin/python3 -c "import ivmc"` work after a build: a .pth file in Debian python's
# user site directory names this checkout's build/release/python (where the build puts the
# package). Idempotent; says what it wrote. Remove the file to undo.
set -euo pipefail
cd "$(dirname "$0")/.."
package_dir="$(pwd)/build/release/python"
site="$(/usr/bin/python3 -m site --user-site)"
mkdir -p "$site"
pth="$site/ivmc.pth"
if [ "$(cat "$pth" 2>/dev/null)" != "$package_dir" ]; then
  echo "$package_dir" >"$pth"
  echo "python: $pth -> $package_dir (import ivmc from /usr/bin/python3)"
fi
