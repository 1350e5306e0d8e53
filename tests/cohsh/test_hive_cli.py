"""``cohsh hive`` as a subcommand (issue 21): it prints a token URL, serves only with it, stops on Ctrl-C.

``--transport mock`` boots the in-process host system behind the same 9P pool code, so this runs the
real command line end to end in a child process without QEMU.
"""
from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
from pathlib import Path

from cohsh import cli

REPO = Path(__file__).resolve().parents[2]


def get(port: int, path: str, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def test_cohsh_hive_serves_only_with_its_token_and_stops_on_ctrl_c():
    child = subprocess.Popen([sys.executable, "-m", "cohsh", "--transport", "mock", "hive", "--listen", "127.0.0.1:0"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        found = re.fullmatch(r"hive: serving http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{32,})\n", line)
        assert found, line + child.stderr.read() if child.poll() is not None else line
        port, token = int(found.group(1)), found.group(2)
        resp, body = get(port, "/")
        assert (resp.status, body) == (403, b"")
        resp, _ = get(port, f"/?token={token}")
        assert resp.status == 303
        cookie = resp.getheader("Set-Cookie").split(";")[0]
        resp, body = get(port, "/api/state", {"Cookie": cookie})
        assert resp.status == 200 and b'"snapshot":true' in body
        child.send_signal(signal.SIGINT)
        assert child.wait(20) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "refused GET / from 127.0.0.1: missing or wrong session token" in child.stderr.read()


def test_cohsh_hive_refuses_a_non_loopback_listen_address_and_bad_options(capsys):
    assert cli.main(["hive", "--listen", "0.0.0.0:0"], env={}) == 2
    assert "not a loopback address" in capsys.readouterr().err
    assert cli.main(["hive", "--listen", "nonsense"], env={}) == 2
    assert cli.main(["--role", "worker-heartbeat", "hive"], env={}) == 2


def test_cohsh_hive_without_a_9p_endpoint_exits_3(capsys):
    from qemu.launch import free_port

    code = cli.main(["--9p-port", str(free_port()), "--ticket-secret", "bootstrap", "hive",
                     "--listen", "127.0.0.1:0"], env={})
    assert code == 3
    assert "cannot reach 9P" in capsys.readouterr().err
