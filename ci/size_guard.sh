#!/bin/sh
# Enforce red line R7 (SPEC §2.1): the boot payload handed to QEMU as -initrd must be < 4 MiB
# (4194304 bytes), measured on the file as given (i.e. after compression).
# Exit codes: 0 OK, 1 usage or missing/unreadable file, 2 too large.
set -u
LIMIT=4194304
if [ "$#" -lt 1 ]; then
    echo "usage: size_guard.sh <archive>" >&2
    exit 1
fi
archive=$1
if [ ! -f "$archive" ] || [ ! -r "$archive" ]; then
    echo "Rootfs archive not found: $archive" >&2
    exit 1
fi
size=$(wc -c < "$archive" | tr -d ' ')
if [ "$size" -ge "$LIMIT" ]; then
    echo "Archive exceeds 4 MiB: $size bytes" >&2
    exit 2
fi
echo "Archive size OK: $size bytes"
exit 0
