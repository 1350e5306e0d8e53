"""``updates [<root>]``: the committed CAS epochs and their manifests (SPEC §13), from plain console reads.

Why ``LS``/``CAT`` and no new verb: the console protocol (§10.5) is fixed, and every role may read
committed epochs. ``CAT`` streams binary content as ``b64:`` lines (§10.5), which this view joins and
decodes; the manifest is shown as ``cas-tool dump`` shows it (JSON, byte strings as lowercase hex,
keys sorted, indent 2) under one summary line per epoch::

    epoch 1 kind=base chunks=256 payload_bytes=1048576 payload_sha256=…
    {
      "chunk_bytes": 4096,
      …

and the response line ``OK UPDATES epochs=<n>``. A refused read ends the command with that read's ERR
line. ``CAT`` returns at most 256 lines (12 KiB of manifest); a longer manifest is reported as cut.
"""
from __future__ import annotations

import binascii
import json
from collections.abc import Callable

from cohsh.script import Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from cohsh.transport_tcp import Reply

CAT_LINES = 256


def _plain(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def manifest_lines(epoch: str, content: tuple[str, ...] | list[str]) -> list[str]:
    """The summary line and the dump view of one epoch's ``CAT`` lines."""
    import cbor2

    try:
        raw = b"".join(binascii.a2b_base64(line[4:]) for line in content if line.startswith("b64:"))
        value = cbor2.loads(raw)
    except Exception:  # noqa: BLE001 - a cut or odd manifest is reported, not fatal
        cut = " (cut at the console's 256-line CAT limit)" if len(content) >= CAT_LINES else ""
        return [f"epoch {epoch} manifest unreadable{cut}"]
    if not isinstance(value, dict):
        return [f"epoch {epoch} manifest unreadable"]
    kind = "delta" if "delta" in value else "base"
    chunks = value.get("chunks")
    digest = value.get("payload_sha256")
    summary = (f"epoch {epoch} kind={kind} chunks={len(chunks) if isinstance(chunks, list) else '?'} "
               f"payload_bytes={value.get('payload_bytes')} "
               f"payload_sha256={digest.hex() if isinstance(digest, bytes) else '?'}")
    return [summary, *json.dumps(_plain(value), sort_keys=True, indent=2).splitlines()]


def run_updates(root: str, step: "Callable[[str], Reply | Outcome]", say: Callable[[str], None]) -> Outcome:
    """``step(wire)`` is the shell's one-request helper (a Reply, or the Outcome that ends the command)."""
    listing = step(f"LS {root}")
    if isinstance(listing, Outcome):
        return listing
    epochs = sorted((name.rstrip("/") for name in listing.content if name.rstrip("/").isdigit()), key=int)
    for epoch in epochs:
        reply = step(f"CAT {root}/{epoch}/manifest.cbor")
        if isinstance(reply, Outcome):
            return reply
        for line in manifest_lines(epoch, reply.content):
            say(line)
    if not epochs:
        say("no committed epochs")
    return Outcome(f"OK UPDATES epochs={len(epochs)}")
