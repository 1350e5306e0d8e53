#!/usr/bin/env bash
# Boot the Cohesix image under qemu-system-aarch64 -M virt (SPEC §2.2), serial console on this terminal.
# usage: scripts/qemu-run.sh [--kernel <image>] [--initrd <payload>] [--console-port 31337] [--9p-port 5640]
#                            [--net user|none] [--exit-after <s>] [--qemu <binary>] [--pcap <file>]
#                            [--qmp <unix socket path>] [--manifest <resolved IR manifest>]
# The command line is built by qemu/launch.py (shared with the test harness); this exits with QEMU's status.
# Relative paths are taken from the caller's directory (no cd), the repo is found through PYTHONPATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${here}/.venv/bin/python"
[ -x "$py" ] || py="python3"
export PYTHONPATH="${here}${PYTHONPATH:+:${PYTHONPATH}}"
exec "$py" -m qemu.launch "$@"
