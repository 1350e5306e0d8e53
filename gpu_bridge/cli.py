"""``gpu-bridge-host (--mock | --nvml) [--list] [--connect HOST:PORT --ticket <queen ticket>] [--once]``.

SPEC §9.5. Exit codes: 0 success; 2 usage error; 3 ``nvml unavailable: <reason>`` on stderr; 4 connection
or attach failure (also a connection lost while serving). ``--list`` prints one §9.1 info line per GPU
on stdout and exits (it wins over ``--connect``). Without ``--list`` or ``--connect`` there is nothing
to do, which is a usage error.
"""
from __future__ import annotations

import argparse
import signal
import sys

EXIT_OK, EXIT_USAGE, EXIT_NVML, EXIT_CONNECT = 0, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit status is 2 too; keep it explicit
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="gpu-bridge-host", description="Register host GPUs with Cohesix and run their jobs.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mock", action="store_true", help="the two mock GPUs of SPEC §9.1")
    source.add_argument("--nvml", action="store_true", help="NVIDIA GPUs through NVML (needs the nvml extra)")
    parser.add_argument("--list", action="store_true", help="print one info line per GPU and exit")
    parser.add_argument("--connect", metavar="HOST:PORT", help="the Cohesix 9P TCP listener")
    parser.add_argument("--ticket", help="a queen ticket (the 9P listener requires one)")
    parser.add_argument("--once", action="store_true", help="exit once the job stream is empty")
    parser.add_argument("--verbose", "-v", action="store_true", help="log registrations and refused reports")
    args = parser.parse_args(argv)
    if not args.list:
        if not args.connect:
            parser.error("nothing to do: give --list or --connect HOST:PORT")
        if not args.ticket:
            parser.error("--connect needs --ticket <queen ticket>")
        host, sep, port = args.connect.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            parser.error(f"--connect wants HOST:PORT, got {args.connect!r}")
        args.host, args.port = host.strip("[]"), int(port)
    elif args.once and not args.connect:
        parser.error("--once only applies to --connect")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gpu_bridge import devices

    if args.nvml:
        try:
            gpus = devices.nvml_gpus()
        except devices.NvmlUnavailable as exc:
            print(f"nvml unavailable: {exc}", file=sys.stderr)
            return EXIT_NVML
    else:
        gpus = devices.mock_gpus()
    if args.list:
        for info in gpus:
            print(info.line())
        return EXIT_OK
    return _serve(args, gpus)


def _serve(args: argparse.Namespace, gpus: list) -> int:
    from gpu_bridge.bridge import Bridge, ConnectFailed
    from nine_door.errors import NineError

    log = (lambda text: print(f"gpu-bridge-host: {text}", file=sys.stderr)) if args.verbose else (lambda text: None)
    try:
        bridge = Bridge.connect(args.host, args.port, args.ticket, log=log)
    except ConnectFailed as exc:
        print(f"gpu-bridge-host: connection failed: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    stopping: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda num, _frame: stopping.append(num))
    try:
        bridge.register(gpus)
        bridge.serve(once=args.once, should_stop=lambda: bool(stopping))
    except NineError as exc:
        print(f"gpu-bridge-host: the server refused the bridge: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    except (OSError, ConnectionError) as exc:
        print(f"gpu-bridge-host: connection lost: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    finally:
        bridge.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
