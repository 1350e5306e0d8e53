#!/bin/sh
# One idempotent setup for a fresh Debian 12 machine, run as root from anywhere:
#   sh toolchain/setup.sh            # apt packages, .venv with the project, guest pieces
# A second run skips whatever is present: no apt when the packages are installed, no pip when the
# venv already imports the project, no downloads when out/cache matches its lock (offline-safe).
# Environment: PYTHON (interpreter for .venv; default: the python3 running this script's PATH),
#              COHESIX_SKIP_GUEST=1 (stop before the guest fetch).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
say() { printf '[setup] %s\n' "$*"; }

# 1. Host packages (QEMU, 9P peers for interop tests, archive tools, a headless browser for cohsh hive).
APT_PACKAGES="qemu-system-arm diod cpio libarchive-tools zstd xz-utils python3-venv chromium chromium-driver"
missing=""
for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "apt-get install:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
else
    say "apt packages present"
fi

# 2. Project virtualenv (uses the interpreter that runs this script unless PYTHON says otherwise).
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv .venv
fi
STAMP=.venv/.cohesix-pyproject.sha256
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ] || ! .venv/bin/python -c "import construct, elftools, zstandard, doit" 2>/dev/null; then
    say "pip install -e '.[test]' into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    echo "$want" > "$STAMP"
else
    say ".venv up to date"
fi

# 3. Guest pieces: arm64 kernel + Python runtime, pinned in out/cache/guest-lock.json.
if [ "${COHESIX_SKIP_GUEST:-0}" = 1 ]; then
    say "skipping guest fetch (COHESIX_SKIP_GUEST=1)"
else
    say "guest fetch"
    .venv/bin/python toolchain/guest_fetch.py --out out
fi
say "done: build with '.venv/bin/doit build' (or .venv/bin/python -m image.build)"
