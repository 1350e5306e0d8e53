"""Mock and QEMU transports are connectors in front of the same client (SPEC §11.1)."""
from __future__ import annotations

import io

import pytest

from cohsh import cli, transport_mock, transport_qemu
from cohsh.transport_mock import MockSystem
from cohsh.transport_qemu import QemuOptions, QemuSystem
from cohsh_fake_console import GOOD_WORKER_TICKET, FakeConsole


def run_cli(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, env=env or {}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


class FakeHost:
    def __init__(self, console: FakeConsole) -> None:
        self.console = console
        self.stopped = False
        self.connects = 0

    def connect_console(self):
        self.connects += 1
        return self.console.socketpair()

    def stop(self) -> None:
        self.stopped = True


def test_mock_transport_uses_socketpair_and_stops_system(console: FakeConsole, monkeypatch) -> None:
    hosts: list[tuple[str, FakeHost]] = []

    def starter(ir_path: str) -> FakeHost:
        host = FakeHost(console)
        hosts.append((ir_path, host))
        return host

    monkeypatch.setattr(transport_mock, "_default_starter", starter)
    code, out, err = run_cli(["--transport", "mock", "--mock-ir", "some/ir.toml", "cat", "/proc/boot"])
    assert (code, err) == (0, "")
    assert "[console] OK CAT path=/proc/boot data=tick 1" in out
    (ir, host), = hosts
    assert ir == "some/ir.toml" and host.stopped and host.connects == 1
    assert console.connections[0].lines[0] == "AUTH changeme"


def test_mock_transport_env_selection_and_failure(monkeypatch) -> None:
    def broken(ir_path: str):
        raise ValueError("invalid IR")

    monkeypatch.setattr(transport_mock, "_default_starter", broken)
    code, _, err = run_cli(["ping"], env={"COHSH_TRANSPORT": "mock"})
    assert code == 3 and "mock system failed to start: invalid IR" in err


def test_mock_system_starts_once_for_reconnects(console: FakeConsole) -> None:
    starts: list[FakeHost] = []

    def starter(ir: str) -> FakeHost:
        starts.append(FakeHost(console))
        return starts[-1]

    system = MockSystem("ir.toml", starter)
    system.connect().close()
    system.connect().close()
    system.stop()
    assert len(starts) == 1 and starts[0].connects == 2 and starts[0].stopped


class FakeGuest:
    instances: list["FakeGuest"] = []

    def __init__(self, console: FakeConsole, **kwargs) -> None:
        self.kwargs = kwargs
        self.console_port = console.port  # the fake "forward" lands on the fake console
        self.started = self.stopped = False
        FakeGuest.instances.append(self)

    def start(self) -> "FakeGuest":
        self.started = True
        return self

    def stop(self) -> None:
        self.stopped = True


def test_qemu_transport_boots_connects_and_stops(console: FakeConsole, monkeypatch) -> None:
    FakeGuest.instances.clear()
    monkeypatch.setattr(transport_qemu, "_default_guest_factory", lambda **kw: FakeGuest(console, **kw))
    code, out, err = run_cli(["--transport", "qemu", "--qemu-kernel", "k", "--qemu-initrd", "i",
                              "--qemu-bin", "qemu-x", "--qemu-arg=-s", "ping"])
    assert (code, err) == (0, "")
    assert "ping: pong" in out
    (guest,) = FakeGuest.instances
    assert guest.started and guest.stopped
    assert guest.kwargs["kernel"] == "k" and guest.kwargs["initrd"] == "i" and guest.kwargs["qemu_bin"] == "qemu-x"
    assert guest.kwargs["extra_args"] == ["-s"]
    assert isinstance(guest.kwargs["console_port"], int)


def test_qemu_boot_failure_is_a_transport_failure(monkeypatch) -> None:
    class Boom(FakeGuest):
        def start(self):
            raise TimeoutError("no console ready marker")

    stopped: list[bool] = []

    def factory(**kw):
        guest = Boom.__new__(Boom)
        guest.kwargs, guest.console_port, guest.started, guest.stopped = kw, 1, False, False
        guest.stop = lambda: stopped.append(True)  # type: ignore[method-assign]
        return guest

    monkeypatch.setattr(transport_qemu, "_default_guest_factory", factory)
    system = QemuSystem(QemuOptions("k", "i"))
    with pytest.raises(OSError):
        system.connect()
    assert stopped == [True]


def test_worker_session_cannot_write_queen_ctl(console: FakeConsole) -> None:
    """The worker_denied_queen_ctl.coh scenario against the fake console (no live system needed)."""
    import tempfile, os
    text = (f"attach worker-heartbeat {GOOD_WORKER_TICKET}\nEXPECT OK\n"
            'echo {"kill":"worker-1"} > /queen/ctl\nEXPECT ERR\nEXPECT SUBSTR detail=denied\n'
            "kill worker-1\nEXPECT SUBSTR error=EACCES\nquit\n")
    with tempfile.NamedTemporaryFile("w", suffix=".coh", delete=False) as fh:
        fh.write(text)
    try:
        code, out, err = run_cli(["--tcp-port", str(console.port), "--script", fh.name])
    finally:
        os.unlink(fh.name)
    assert (code, err) == (0, "")
    assert 'ECHO /queen/ctl {"kill":"worker-1"}' in console.all_lines()
    assert "attached session 1 as worker-heartbeat" in out


def test_env_precedence_flag_over_env_over_default(console: FakeConsole) -> None:
    env = {"COHSH_TCP_PORT": str(console.port), "COHSH_AUTH_TOKEN": "changeme"}
    code, _, _ = run_cli(["ping"], env=env)
    assert code == 0
    code, _, err = run_cli(["--auth-token", "wrong", "ping"], env=env)  # flag beats env
    assert code == 3 and "invalid-token" in err
    code, _, err = run_cli(["ping"], env={**env, "COHSH_AUTH_TOKEN": "wrong"})  # env beats default
    assert code == 3
    code, _, err = run_cli(["ping"], env={"COHSH_TCP_PORT": "notaport"})
    assert code == 2 and err.startswith("Error: COHSH_TCP_PORT")
    code, _, err = run_cli(["ping"], env={"COHSH_TRANSPORT": "carrier-pigeon"})
    assert code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--script", "a.coh", "--check", "b.coh"],
        ["--transport", "telnet"],
        ["--tcp-port", "0"],
        ["--bogus"],
        ["--script", "/nonexistent/x.coh"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    code, _, err = run_cli(argv)
    assert code == 2 and "Error: " in err


def test_check_mode(tmp_path) -> None:
    good = tmp_path / "good.coh"
    good.write_text("attach queen\nEXPECT OK\n")
    assert run_cli(["--check", str(good)]) == (0, f"check ok: {good}\n", "")
    bad = tmp_path / "bad.coh"
    bad.write_text("attach queen\nWAIT 2001\n")
    code, out, err = run_cli(["--check", str(bad)])
    assert (code, out) == (1, "")
    assert err == (f"Error: script failure at line 2: WAIT 2001\n"
                   "reason: WAIT exceeds max of 2000ms\nlast response: none\n")
