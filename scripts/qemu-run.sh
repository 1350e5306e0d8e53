#!/usr/bin/env bash
# Boot the Cohesix image under qemu-system-aarch64 -M virt (SPEC §2.2).
# usage: scripts/qemu-run.sh --kernel <image> --initrd <payload> [--console-port 31337] [--9p-port 5640]
#                            [--net user|none] [--exit-after <s>] [--qemu <binary>]
# The command line is built by qemu/launch.py (shared with the test harness); this exits with QEMU's status.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${here}/.venv/bin/python"
[ -x "$py" ] || py="python3"
cd "$here"
exec "$py" -m qemu.launch "$@"
