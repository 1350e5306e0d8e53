"""``cohsh hive [--listen HOST:PORT]``: serve the live hive view (docs/hive.md).

The hive reads the system through session pools made exactly as cohsh makes them for ``pool bench``
(``--9p-host``/``--9p-port``, ``--policy``, the queen's ticket or its minting secret), so it needs the
9P endpoint, not the console. :class:`Hive` is the embeddable whole (tests and the bench run it in
process); :func:`run` is the subcommand.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys
import threading
from typing import Callable, Sequence, TextIO

from cohsh.hive import auth
from cohsh.hive.actions import Actions
from cohsh.hive.collector import Collector
from cohsh.hive.server import HiveApp, make_server
from cohsh.pool import Pool, PoolError

DEFAULT_LISTEN = "127.0.0.1:8080"


class Hive:
    """Collector + actions + HTTP server. ``make_pool(control)`` returns an unopened queen pool with
    that many control sessions (the collector's); actions use their own small pool."""

    def __init__(self, make_pool: Callable[[int], Pool], host: str = "127.0.0.1", port: int = 8080, *,
                 token: str | None = None, interval_s: float = 0.25, ring_budget: int = 64,
                 log: Callable[[str], None] = lambda s: None) -> None:
        self.token = token or auth.new_token()
        self.log = log
        self.collector = Collector(make_pool, interval_s=interval_s, ring_budget=ring_budget, log=log)
        self._action_pool = make_pool(1)
        self.actions = Actions(self._action_pool, lambda: self.collector.boot, self.collector.poke)
        self.app = HiveApp(self.token, self.collector.snapshot, self.collector.hub, self.actions.perform, log)
        self.httpd = make_server(self.app, host, port)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def host(self) -> str:
        return self.httpd.server_address[0]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/?token={self.token}"

    def start(self) -> "Hive":
        self.collector.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="hive-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.app.stopping.set()
        self.collector.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._action_pool.close()


def parse_listen(text: str, allow_remote: bool) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen expects HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ValueError(f"--listen host must be an IP address, got {host!r}") from None
    if not loopback and not allow_remote:
        raise ValueError(f"--listen {host} is not a loopback address (add --allow-remote to serve it)")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cohsh hive", description="Serve the live hive view (docs/hive.md).")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT to serve on (default %(default)s; "
                   "port 0 picks a free one)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --listen address")
    p.add_argument("--interval-ms", type=int, default=250, help="collector period (default %(default)s)")
    p.add_argument("--ring-budget", type=int, default=64, help="rings read per tick (default %(default)s)")
    return p


def run(argv: Sequence[str], make_pool: Callable[[int], Pool], out: TextIO, err: TextIO,
        wait: Callable[[], None] | None = None) -> int:
    """The subcommand: 0 after Ctrl-C, 2 on a usage error, 3 when the 9P endpoint is unreachable."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
        host, port = parse_listen(args.listen, args.allow_remote)
        if not 50 <= args.interval_ms <= 10000 or not 1 <= args.ring_budget <= 4096:
            raise ValueError("--interval-ms must be 50..10000 and --ring-budget 1..4096")
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    except ValueError as exc:
        err.write(f"Error: {exc}\n")
        return 2
    try:
        probe = make_pool(1)
        probe.open()            # fail fast (exit 3) when the 9P endpoint or the ticket is wrong
        probe.close()
    except PoolError as exc:
        err.write(f"Error: {exc.message}\n")
        return 3 if exc.transport else 1
    log = lambda line: (err.write(line + "\n"), err.flush())  # noqa: E731
    try:
        hive = Hive(make_pool, host, port, interval_s=args.interval_ms / 1000, ring_budget=args.ring_budget,
                    log=log)
    except OSError as exc:
        err.write(f"Error: cannot listen on {host}:{port}: {exc.strerror or exc}\n")
        return 2
    hive.start()
    out.write(f"hive: serving {hive.url}\n")
    out.write("hive: open that URL once (the token becomes a cookie); Ctrl-C stops\n")
    out.flush()
    try:
        (wait or threading.Event().wait)()
    except KeyboardInterrupt:
        pass
    finally:
        hive.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    from cohsh.cli import main

    sys.exit(main(["hive", *sys.argv[1:]]))
