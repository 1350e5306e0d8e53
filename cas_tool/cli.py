"""``cas-tool`` command line (SPEC §13.5).

Exit codes: 0 ok; 1 verification failure or server refusal (message on stderr); 2 usage; 3 I/O or
connection failure. Each command prints one summary line on stdout; push and fetch draw a progress bar
on stderr when it is a terminal.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_IO = 0, 1, 2, 3


def _uint(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value > (1 << 64) - 1:
        raise argparse.ArgumentTypeError(f"out of range: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cas-tool", description="Content-addressed updates for Cohesix (SPEC §13).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pack", help="cut a payload into chunks and write its manifest")
    p.add_argument("--epoch", type=_uint, required=True)
    p.add_argument("--chunk-bytes", type=_uint, required=True)
    p.add_argument("--base", help="a packed base directory: emit a delta manifest and only new chunks")
    p.add_argument("--sign-key", help="Ed25519 seed file (64 hex)")
    p.add_argument("--out", required=True)
    p.add_argument("payload")

    p = sub.add_parser("verify", help="check a pack directory")
    p.add_argument("dir")
    p.add_argument("--base")
    p.add_argument("--pubkey")

    p = sub.add_parser("keygen", help="write PREFIX.key and PREFIX.pub")
    p.add_argument("--out", required=True)

    for name in ("push", "fetch"):
        p = sub.add_parser(name, help=f"{name} over 9P TCP")
        if name == "push":
            p.add_argument("dir")
        else:
            p.add_argument("--epoch", type=_uint, required=True)
            p.add_argument("--out", required=True)
            p.add_argument("--pubkey", help="also verify the manifest signature")
        p.add_argument("--host", required=True)
        p.add_argument("--port", type=_uint, required=True)
        p.add_argument("--ticket", required=True)
        p.add_argument("--root", default="/updates", help="the CAS root (cas.store.root, default %(default)s)")
        if name == "push":
            p.add_argument("--limit-rate", type=_uint, default=0, help="bytes per second (0: unlimited)")
            p.add_argument("--piece-bytes", type=_uint, default=1 << 16,
                           help="bytes per Twrite at most (capped by the session's iounit)")

    p = sub.add_parser("dump", help="print a manifest as JSON")
    p.add_argument("file")
    return parser


def _fail(code: int, message: str) -> int:
    print(f"cas-tool: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from nine_door.client import ProtocolError
    from nine_door.errors import NineError

    from . import packdir, remote

    try:
        if args.command == "pack":
            payload = Path(args.payload).read_bytes()
            result = packdir.pack(payload, args.epoch, args.chunk_bytes, args.out, args.base, args.sign_key)
            print(f"packed epoch={args.epoch} chunks={len(result.manifest.chunks)} new_chunks={result.new_chunks} "
                  f"payload_sha256={result.manifest.payload_sha256.hex()}")
        elif args.command == "verify":
            manifest = packdir.verify(args.dir, args.base, args.pubkey)
            print(f"verify ok epoch={manifest.epoch}")
        elif args.command == "keygen":
            key, pub = packdir.keygen(args.out)
            print(f"keygen key={key} pub={pub}")
        elif args.command == "dump":
            print(packdir.dump_json(Path(args.file).read_bytes()))
        elif args.command == "push":
            client = remote.connect(args.host, args.port, args.ticket)
            try:
                stats = remote.push(args.dir, client, args.root, args.piece_bytes, args.limit_rate)
            finally:
                client.close()
            print(f"pushed epoch={packdir.load_manifest(args.dir)[1].epoch} chunks_sent={stats.chunks_sent} "
                  f"chunks_skipped={stats.chunks_skipped} bytes_sent={stats.bytes_sent}")
        elif args.command == "fetch":
            pubkey = packdir.read_hex_key(args.pubkey) if args.pubkey else None
            client = remote.connect(args.host, args.port, args.ticket)
            try:
                manifest, received = remote.fetch(client, args.epoch, args.out, args.root, pubkey)
            finally:
                client.close()
            print(f"fetched epoch={manifest.epoch} bytes={manifest.payload_bytes} bytes_received={received} "
                  f"payload_sha256={manifest.payload_sha256.hex()}")
    except packdir.VerifyError as exc:
        return _fail(EXIT_REFUSED, f"{args.command} failed: {exc}")
    except NineError as exc:
        return _fail(EXIT_REFUSED, f"server refused: {exc.name} ({exc.detail})")
    except ValueError as exc:      # a payload too large for 1024 chunks, a dump of bytes that are not CBOR
        return _fail(EXIT_REFUSED, f"{args.command} failed: {exc}")
    except (OSError, ConnectionError, ProtocolError, EOFError) as exc:
        return _fail(EXIT_IO, f"{args.command}: {exc}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:     # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
