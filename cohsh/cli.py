"""``cohsh`` entry point: options (SPEC §11.1), environment (§11.2), exit codes (§11.3), minting (§4.7).

Exit codes: 0 success; 1 script / ``--check`` / one-shot failure; 2 usage error; 3 transport failure.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, NoReturn, Sequence, TextIO

from cohsh import script
from cohsh.mint import MintError, MintRequest, mint_ticket
from cohsh.pool import PoolError, PoolOptions, PoolPolicy
from cohsh.repl import run_repl, setup_history
from cohsh.script import Outcome, ScriptAborted
from cohsh.shell import Shell
from cohsh.transport_mock import MockSystem
from cohsh.transport_qemu import QemuOptions, QemuSystem
from cohsh.transport_tcp import Connector, ConsoleClient, TransportLost, tcp_connector
from nine_door.vocabulary import CONSOLE_TCP_PORT, HOST_NINEP_PORT

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_TRANSPORT = 0, 1, 2, 3
TRANSPORTS = ("mock", "qemu", "tcp")
# Commands that must not be preceded by the one-shot auto-attach.
_NO_AUTO_ATTACH = frozenset({"attach", "login", "help", "quit", "detach"})
_LOCAL_ONLY = frozenset({"help"})


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _u64(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) >= 1 << 64:
        raise argparse.ArgumentTypeError(f"expected an unsigned integer, got {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1..65535, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cohsh", description="Cohesix operator shell (SPEC §11).")
    p.add_argument("--transport", choices=TRANSPORTS, help="mock | qemu | tcp (env COHSH_TRANSPORT; default tcp)")
    p.add_argument("--tcp-host", help="console host (env COHSH_TCP_HOST; default 127.0.0.1)")
    p.add_argument("--tcp-port", type=_port, help="console port (env COHSH_TCP_PORT; default 31337)")
    p.add_argument("--auth-token", help="console AUTH token (env COHSH_AUTH_TOKEN; default changeme)")
    p.add_argument("--role", help="attach at start as this role")
    p.add_argument("--ticket", help="ticket for the start-up attach")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--script", metavar="FILE", help="run a .coh script")
    mode.add_argument("--check", metavar="FILE", help="only validate a .coh script")
    mode.add_argument("--mint-ticket", action="store_true", help="mint a ticket (SPEC §4.7) and exit")
    p.add_argument("--ticket-subject")
    p.add_argument("--ticket-ticks", type=_u64)
    p.add_argument("--ticket-ops", type=_u64)
    p.add_argument("--ticket-ttl-s", type=_u64)
    p.add_argument("--ticket-issued-at-ms", type=_u64)
    p.add_argument("--ticket-secret")
    p.add_argument("--ticket-config", metavar="ROOT_TASK_TOML")
    p.add_argument("--policy", metavar="FILE", help="cohsh_policy.toml (env COHSH_POLICY)")
    p.add_argument("--9p-host", dest="ninep_host", default="127.0.0.1", help="9P endpoint of session pools (default 127.0.0.1)")
    p.add_argument("--9p-port", dest="ninep_port", type=_port, default=HOST_NINEP_PORT,
                   help="9P port of session pools (default %(default)s; ignored with --transport mock)")
    p.add_argument("--mock-ir", default="configs/root_task.toml", help="IR for --transport mock")
    p.add_argument("--qemu-kernel")
    p.add_argument("--qemu-initrd")
    p.add_argument("--qemu-bin")
    p.add_argument("--qemu-arg", action="append", default=[], help="extra QEMU argument (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER, help="one shell command to run, then exit")
    return p


@dataclass(frozen=True)
class Settings:
    """Options after applying the precedence flag > environment > default (SPEC §11.2)."""

    transport: str
    tcp_host: str
    tcp_port: int
    auth_token: str
    policy: str | None


def resolve_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    transport = args.transport or env.get("COHSH_TRANSPORT") or "tcp"
    if transport not in TRANSPORTS:
        raise UsageError(f"invalid COHSH_TRANSPORT {transport!r} (expected mock, qemu or tcp)")
    if args.tcp_port is not None:
        port = args.tcp_port
    elif env.get("COHSH_TCP_PORT"):
        try:
            port = _port(env["COHSH_TCP_PORT"])
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"COHSH_TCP_PORT: {exc}") from None
    else:
        port = CONSOLE_TCP_PORT
    return Settings(
        transport=transport,
        tcp_host=args.tcp_host or env.get("COHSH_TCP_HOST") or "127.0.0.1",
        tcp_port=port,
        auth_token=args.auth_token or env.get("COHSH_AUTH_TOKEN") or "changeme",
        policy=args.policy or env.get("COHSH_POLICY") or None,
    )


class _System:
    """The transport's connector plus whatever must be stopped on exit; ``ninep_endpoint`` (mock only)
    says where session pools connect instead of ``--9p-host``/``--9p-port``."""

    def __init__(self, connector: Connector, stop: Callable[[], None] = lambda: None,
                 ninep_endpoint: Callable[[], tuple[str, int]] | None = None) -> None:
        self.connector = connector
        self.stop = stop
        self.ninep_endpoint = ninep_endpoint


def make_system(settings: Settings, args: argparse.Namespace) -> _System:
    if settings.transport == "tcp":
        return _System(tcp_connector(settings.tcp_host, settings.tcp_port))
    if settings.transport == "mock":
        mock = MockSystem(args.mock_ir)
        return _System(mock.connect, mock.stop, mock.ninep_endpoint)
    qemu = QemuSystem(QemuOptions(args.qemu_kernel, args.qemu_initrd, args.qemu_bin, tuple(args.qemu_arg)))
    return _System(qemu.connect, qemu.stop)


class _ScriptExecutor:
    """Adapts ``Shell`` to the script runner: transport loss becomes ``ScriptAborted``."""

    def __init__(self, shell: Shell) -> None:
        self._shell = shell

    def execute(self, line: str) -> Outcome:
        try:
            return self._shell.execute(line)
        except TransportLost as exc:
            raise ScriptAborted(exc.reason) from None


def load_policy(path: str | None) -> PoolPolicy:
    """``--policy`` / ``COHSH_POLICY`` (SPEC §11.1): the generated ``cohsh_policy.toml``, else built-in
    defaults. An unreadable file or a value outside its bounds is a usage error (exit 2)."""
    if not path:
        return PoolPolicy()
    try:
        return PoolPolicy.from_file(path)
    except PoolError as exc:
        raise UsageError(exc.message) from None


def pool_options(settings: Settings, args: argparse.Namespace, env: Mapping[str, str],
                 system: "_System | None", policy: PoolPolicy) -> PoolOptions:
    """How this run's shell builds its session pool (SPEC §11.7): the 9P endpoint (``--9p-host``/
    ``--9p-port``; the in-process system's listener for ``--transport mock``), the policy, and what
    mints a ticket when none is given (``--ticket-secret``, ``COHSH_TICKET_SECRET``, the IR named by
    ``--ticket-config`` / ``COHSH_TICKET_CONFIG``, else — for mock — the mock IR)."""
    endpoint = system.ninep_endpoint if system is not None else None
    config = args.ticket_config or env.get("COHSH_TICKET_CONFIG") or (
        args.mock_ir if settings.transport == "mock" else None)
    return PoolOptions(host=args.ninep_host, port=args.ninep_port, endpoint=endpoint,
                       policy=policy, role=args.role, ticket=args.ticket,
                       subject=args.ticket_subject, secret=args.ticket_secret, ticket_config=config,
                       env=env)


def _err(stream: TextIO, message: str) -> None:
    stream.write(f"Error: {message}\n")
    stream.flush()


def _read_script(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read script {path}: {exc}") from None


def _attach_line(role: str, ticket: str | None) -> str:
    return f"attach {role}" + (f" {ticket}" if ticket else "")


def _startup_attach(shell: Shell, role: str, ticket: str | None, err: TextIO) -> bool:
    outcome = shell.execute(_attach_line(role, ticket))
    if outcome.response is not None and outcome.response.startswith("OK"):
        return True
    _err(err, f"attach {role} failed: {outcome.response or 'no response'}")
    return False


def _mint(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    if not args.role:
        _err(err, "--mint-ticket requires --role")
        return EXIT_USAGE
    request = MintRequest(
        role=args.role, subject=args.ticket_subject, ticks=args.ticket_ticks, ops=args.ticket_ops,
        ttl_s=args.ticket_ttl_s, issued_at_ms=args.ticket_issued_at_ms, secret=args.ticket_secret,
        config=args.ticket_config,
    )
    try:
        ticket = mint_ticket(request, env)
    except MintError as exc:
        _err(err, str(exc))
        return EXIT_USAGE
    out.write(ticket + "\n")
    out.flush()
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    read_line: Callable[[str], str] | None = None,
) -> int:
    env = os.environ if env is None else env
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        err.write(parser.format_usage())
        _err(err, str(exc))
        return EXIT_USAGE
    try:
        return _main(args, env, out, err, read_line)
    except UsageError as exc:
        _err(err, str(exc))
        return EXIT_USAGE


def _main(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err: TextIO,
          read_line: Callable[[str], str] | None) -> int:
    if args.mint_ticket:
        return _mint(args, env, out, err)
    if args.check:
        source = _read_script(args.check)
        failure = script.check(source)
        if failure is not None:
            script.write_failure(failure, err)
            return EXIT_FAIL
        out.write(f"check ok: {args.check}\n")
        return EXIT_OK
    settings = resolve_settings(args, env)
    policy = load_policy(settings.policy)  # a bad policy is a usage error before anything connects
    command = " ".join(args.command).strip()
    if args.command[:1] == ["hive"] and not args.script:
        return _run_hive(settings, args, env, policy, out, err)     # docs/hive.md
    if args.script and command:
        raise UsageError("--script cannot be combined with a COMMAND")
    source = _read_script(args.script) if args.script else None
    if source is not None:
        failure = script.check(source)
        if failure is not None:  # syntax errors are reported before anything connects
            script.write_failure(failure, err)
            return EXIT_FAIL
    if command and command.split()[0].lower() in _LOCAL_ONLY:
        # help answers locally: no connection is needed.
        shell = Shell(ConsoleClient(_no_connection, ""), out, errors=err)
        outcome = shell.execute(command)
        return EXIT_FAIL if (outcome.response or "").startswith("ERR") else EXIT_OK
    system = make_system(settings, args)
    if args.verbose:
        err.write(f"cohsh: transport={settings.transport} console={settings.tcp_host}:{settings.tcp_port} "
                  f"9p={args.ninep_host}:{args.ninep_port}\n")
    try:
        pool = pool_options(settings, args, env, system, policy)
        if source is not None:
            return _run_script(system, settings, args, source, out, err, pool)
        if command:
            return _run_one_shot(system, settings, args, command, out, err, pool)
        return _run_interactive(system, settings, args, out, err, read_line, pool)
    finally:
        system.stop()


def _run_hive(settings: Settings, args: argparse.Namespace, env: Mapping[str, str], policy: PoolPolicy,
              out: TextIO, err: TextIO) -> int:
    """``cohsh hive``: a web view fed by queen session pools (cohsh/hive/); no console connection."""
    import dataclasses

    from cohsh.hive.cli import run as run_hive

    if (args.role or "queen").lower() != "queen":
        raise UsageError("cohsh hive runs as queen (--role queen)")
    system = make_system(settings, args) if settings.transport == "mock" else None
    try:
        options = pool_options(settings, args, env, system, policy)

        def make_pool(control: int):
            sized = dataclasses.replace(options, policy=options.policy.with_sizes(control, 1))
            return sized.make("queen", args.ticket)

        return run_hive(args.command[1:], make_pool, out, err)
    finally:
        if system is not None:
            system.stop()


def _no_connection() -> NoReturn:
    raise OSError("local command needs no connection")


def _connect(client: ConsoleClient, err: TextIO) -> bool:
    try:
        client.connect()
    except TransportLost as exc:
        _err(err, exc.reason)
        return False
    return True


def _run_script(system: _System, settings: Settings, args: argparse.Namespace, source: str,
                out: TextIO, err: TextIO, pool: PoolOptions) -> int:
    client = ConsoleClient(system.connector, settings.auth_token, reconnect=False)
    if not _connect(client, err):
        return EXIT_TRANSPORT
    shell = Shell(client, out, pool_options=pool)
    try:
        if args.role and not _startup_attach(shell, args.role, args.ticket, err):
            return EXIT_FAIL
    except TransportLost as exc:
        _err(err, exc.reason)
        return EXIT_TRANSPORT
    try:
        failure = script.run(source, _ScriptExecutor(shell))
    finally:
        shell.close()
        client.close()
    if failure is None:
        return EXIT_OK
    script.write_failure(failure, err)
    return EXIT_TRANSPORT if failure.transport_lost else EXIT_FAIL


def _run_one_shot(system: _System, settings: Settings, args: argparse.Namespace, command: str,
                  out: TextIO, err: TextIO, pool: PoolOptions) -> int:
    client = ConsoleClient(system.connector, settings.auth_token, reconnect=False)
    if not _connect(client, err):
        return EXIT_TRANSPORT
    shell = Shell(client, out, errors=err, raw_b64=True, pool_options=pool)
    try:
        if command.split()[0].lower() not in _NO_AUTO_ATTACH:
            if not _startup_attach(shell, args.role or "queen", args.ticket, err):
                return EXIT_FAIL
        outcome = shell.execute(command)
        if not outcome.ends:
            client.quit()
    except TransportLost as exc:
        _err(err, f"connection lost: {exc.reason}")
        return EXIT_TRANSPORT
    finally:
        shell.close()
        client.close()
    response = outcome.response
    if response is None or response.startswith("ERR"):
        if response is not None and not shell.last_was_local:
            _err(err, f"command failed: {response}")
        if shell.pool_error is not None and shell.pool_error.transport:
            return EXIT_TRANSPORT        # the 9P endpoint could not be reached (SPEC §11.3)
        return EXIT_FAIL
    return EXIT_OK


def _run_interactive(system: _System, settings: Settings, args: argparse.Namespace, out: TextIO,
                     err: TextIO, read_line: Callable[[str], str] | None, pool: PoolOptions) -> int:
    def notify(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    client = ConsoleClient(system.connector, settings.auth_token, reconnect=True, notify=notify)
    if not _connect(client, err):
        return EXIT_TRANSPORT
    shell = Shell(client, out, pool_options=pool)
    save_history: Callable[[], None] = lambda: None
    if read_line is None:
        save_history = setup_history()
        read_line = input
    try:
        attached = bool(args.role) and _startup_attach(shell, args.role, args.ticket, out)
        run_repl(shell, attached=attached, read_line=read_line)
    except TransportLost as exc:
        _err(err, f"connection lost: {exc.reason}")
        return EXIT_TRANSPORT
    finally:
        save_history()
        shell.close()
        client.close()
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
