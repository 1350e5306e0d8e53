"""``cohsh hive`` HTTP layer (issue 21): the token gate, the cookie, SSE framing, action refusals.

The server under test is the real one (cohsh.hive.server on an ephemeral loopback port); what feeds
it is a test double — a real :class:`cohsh.hive.collector.Hub` with hand-published deltas and a
recording action runner — so each refusal is checked without a Cohesix system behind it. The
parsers the hive owns (SSE, cookie/query token, records, log events, page actions) get Hypothesis
properties. tests/cohsh/test_hive_browser.py drives the whole thing against a live system.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading

import pytest
from hypothesis import given, settings, strategies as st

from cohsh.commands import Command, translate
from cohsh.hive import auth, sse
from cohsh.hive.actions import ActionError, ActionResult, shell_line
from cohsh.hive.collector import Collector, Hub, WorkerView
from cohsh.hive.model import ALL_GROUP, BootFacts, log_event, shard_label, split_records
from cohsh.hive.server import HiveApp, make_server

TOKEN = "t0k3n-for-tests_abcdefghijklmnop"


class Source:
    """Snapshot + hub test double; ``acts`` records the actions the server passed on."""

    def __init__(self) -> None:
        self.hub = Hub(keep=4)
        self.acts: list[object] = []

    def snapshot(self) -> tuple[int, str]:
        with self.hub.cond:
            return self.hub.version, json.dumps({"v": self.hub.version, "snapshot": True})

    def act(self, action: object) -> ActionResult:
        self.acts.append(action)
        if isinstance(action, dict) and action.get("worker") == "worker-404":
            return ActionResult(False, "write /queen/ctl: no such file or directory (ENOENT)")
        return ActionResult(True, "ok", "{}")


@pytest.fixture
def served():
    source = Source()
    logs: list[str] = []
    app = HiveApp(TOKEN, source.snapshot, source.hub, source.act, logs.append)
    httpd = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.server_address[1], source, logs
    app.stopping.set()
    source.hub.close()
    httpd.shutdown()
    httpd.server_close()


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


COOKIE = {"Cookie": f"{auth.COOKIE_NAME}={TOKEN}"}


# -- the token gate ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/index.html", "/static/hive.js", "/static/uPlot.iife.min.js",
                                  "/events", "/api/state", "/nonexistent"])
@pytest.mark.parametrize("headers", [{}, {"Cookie": f"{auth.COOKIE_NAME}=wrong"}, {"Cookie": "other=" + TOKEN}])
def test_missing_or_wrong_token_is_403_and_nothing_is_served(served, path, headers):
    port, _, logs = served
    resp, data = request(port, "GET", path, headers=headers)
    assert resp.status == 403
    assert data == b""
    assert resp.getheader("Set-Cookie") is None
    assert any("refused GET" in line and "session token" in line for line in logs)
    assert all(TOKEN not in line for line in logs)


def test_wrong_token_in_the_url_is_403(served):
    port, _, _ = served
    for query in ("?token=nope", "?token=" + TOKEN[:-1], "?token=" + TOKEN + "x", "?tok=" + TOKEN):
        resp, data = request(port, "GET", "/" + query)
        assert (resp.status, data) == (403, b""), query


def test_post_without_token_is_403_and_no_action_runs(served):
    port, source, _ = served
    resp, data = request(port, "POST", "/api/action", json.dumps({"action": "kill", "worker": "worker-1"}).encode(),
                         {"Content-Type": "application/json"})
    assert (resp.status, data) == (403, b"")
    assert source.acts == []


def test_token_in_the_url_sets_an_httponly_cookie_and_redirects_without_it(served):
    port, _, _ = served
    resp, _ = request(port, "GET", "/?token=" + TOKEN)
    assert resp.status == 303
    assert resp.getheader("Location") == "/"
    cookie = resp.getheader("Set-Cookie")
    assert cookie.startswith(f"{auth.COOKIE_NAME}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    resp, page = request(port, "GET", "/", headers={"Cookie": cookie.split(";")[0]})
    assert resp.status == 200
    assert b"<title>Cohesix hive</title>" in page
    assert resp.getheader("Content-Security-Policy").startswith("default-src 'self'")
    assert b"http://" not in page and b"https://" not in page      # no CDN: every asset is ours


def test_static_assets_are_served_and_nothing_else(served):
    port, _, _ = served
    resp, js = request(port, "GET", "/static/uPlot.iife.min.js", headers=COOKIE)
    assert resp.status == 200 and "javascript" in resp.getheader("Content-Type")
    assert b"uPlot" in js
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/", "/static/nope.js",
                 "/static//etc/passwd"):
        resp, _ = request(port, "GET", path, headers=COOKIE)
        assert resp.status == 404, path


# -- server-sent events ------------------------------------------------------------------------------
def open_events(port: int):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {auth.COOKIE_NAME}={TOKEN}\r\n\r\n"
                 .encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    head, rest = buf.split(b"\r\n\r\n", 1)
    return sock, head.decode(), rest


def read_events(sock, parser: sse.EventParser, rest: bytes, n: int) -> list[sse.Event]:
    events = parser.feed(rest)
    while len(events) < n:
        chunk = sock.recv(65536)
        assert chunk, "stream ended"
        events += parser.feed(chunk)
    return events


def test_event_stream_sends_a_snapshot_then_each_delta_with_its_version(served):
    port, source, _ = served
    sock, head, rest = open_events(port)
    try:
        assert head.startswith("HTTP/1.1 200")
        assert "Content-Type: text/event-stream" in head
        parser = sse.EventParser()
        first = read_events(sock, parser, rest, 1)
        assert first[0].event == "snapshot" and first[0].id == "0"
        assert json.loads(first[0].data) == {"v": 0, "snapshot": True}
        with source.hub.cond:
            source.hub.publish_locked({"workers": [{"id": "worker-1"}], "note": "line1\nline2"})
            source.hub.publish_locked({"removed": ["worker-1"]})
        events = read_events(sock, parser, b"", 2)
        assert [(e.event, e.id) for e in events] == [("delta", "1"), ("delta", "2")]
        assert json.loads(events[0].data)["note"] == "line1\nline2"
        assert json.loads(events[1].data) == {"removed": ["worker-1"], "v": 2}
    finally:
        sock.close()


def test_a_reader_that_fell_behind_gets_a_fresh_snapshot(served):
    port, source, _ = served
    hub = source.hub
    with hub.cond:
        hub.publish_locked({"n": 1})
    assert hub.since(0, 0) == [(1, '{"n":1,"v":1}')]
    with hub.cond:
        for i in range(6):                    # keep=4: version 1 and 2 are dropped
            hub.publish_locked({"n": i})
    assert hub.since(1, 0) is None
    assert [v for v, _ in hub.since(3, 0)] == [4, 5, 6, 7]


# -- actions -----------------------------------------------------------------------------------------
def post(port: int, body: bytes, headers: dict | None = None):
    h = {"Content-Type": "application/json", **COOKIE, **(headers or {})}
    return request(port, "POST", "/api/action", body, h)


def test_action_is_passed_on_and_its_errno_text_comes_back(served):
    port, source, _ = served
    resp, data = post(port, json.dumps({"action": "kill", "worker": "worker-404"}).encode())
    assert resp.status == 422
    assert json.loads(data) == {"ok": False, "message": "write /queen/ctl: no such file or directory (ENOENT)",
                                "line": None}
    resp, data = post(port, b'{"action":"spawn-heartbeat","ticks":"5"}',
                      {"Origin": f"http://127.0.0.1:{port}"})
    assert resp.status == 200 and json.loads(data)["ok"] is True
    assert source.acts[-1] == {"action": "spawn-heartbeat", "ticks": "5"}


@pytest.mark.parametrize("body,headers,status", [
    (b'{"action":"kill","worker":"worker-1"}', {"Content-Type": "text/plain"}, 415),
    (b'{"action":"kill","worker":"worker-1"}', {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    (b'{"action":"kill","worker":"worker-1"}', {"Origin": "http://evil.example"}, 403),
    (b"{not json", {}, 400),
    (b"\xff\xfe", {}, 400),
    (b"x" * 5000, {}, 413),
])
def test_refused_actions_run_nothing(served, body, headers, status):
    port, source, logs = served
    resp, _ = post(port, body, headers)
    assert resp.status == status
    assert source.acts == []
    assert any(line.startswith("hive: refused POST /api/action") for line in logs)


def test_hostile_requests_do_not_end_the_server(served):
    port, _, _ = served
    for junk in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\xff" * 100 + b"\r\n\r\n",
                 b"POST /api/action HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(junk)
            try:
                sock.recv(4096)
            except OSError:
                pass
    resp, _ = request(port, "GET", "/api/state", headers=COOKIE)
    assert resp.status == 200


def test_shell_line_reuses_the_shell_vocabulary():
    assert shell_line({"action": "spawn-heartbeat", "ticks": "5", "ttl_s": 9}) == ("spawn-heartbeat",
                                                                                   "spawn heartbeat ticks=5 ttl_s=9")
    kind, line = shell_line({"action": "spawn-gpu", "gpu_id": "GPU-0", "mem_mb": "1024", "streams": "1",
                             "ttl_s": "60"})
    assert translate(line).wire == ('ECHO /queen/ctl {"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":1024,'
                                    '"streams":1,"ttl_s":60}}')
    assert shell_line({"action": "kill", "worker": "worker-7"}) == ("kill", "kill worker-7")
    for bad in ({"action": "kill"}, {"action": "kill", "worker": "a b"}, {"action": "rm", "worker": "x"},
                {"action": "spawn-heartbeat", "ticks": "1 ops=5"}, {"action": "spawn-heartbeat", "ticks": True},
                {"action": "kill", "worker": "worker-1", "extra": 1}, ["kill"], "kill worker-1"):
        with pytest.raises(ActionError):
            shell_line(bad)


# -- properties of the parsers the hive owns ---------------------------------------------------------
_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@given(_texts, st.one_of(st.none(), st.from_regex(r"[a-z]{1,10}", fullmatch=True)),
       st.lists(st.integers(min_value=1, max_value=50), max_size=8))
@settings(max_examples=200, deadline=None)
def test_sse_round_trip_whatever_the_chunking(data, name, cuts):
    blob = sse.comment("hello") + sse.encode(data, name, "7") + sse.encode("x")
    parser = sse.EventParser()
    events: list[sse.Event] = []
    pos = 0
    for cut in cuts:
        events += parser.feed(blob[pos:pos + cut])
        pos += cut
    events += parser.feed(blob[pos:])
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    assert events[0] == sse.Event(name or "message", normalised, "7")
    assert events[1] == sse.Event("message", "x", "7")       # the last id persists (WHATWG)


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_sse_parser_never_raises(blob):
    parser = sse.EventParser()
    for event in parser.feed(blob) + parser.feed(b"\n\n"):
        assert isinstance(event.data, str)


def test_sse_refuses_multiline_names():
    with pytest.raises(ValueError):
        sse.encode("x", "a\nb")


@given(st.text(max_size=300), st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_token_parsers_never_raise_and_accept_only_the_token(cookie, query):
    how = auth.check(TOKEN, cookie, query)
    assert how is None or TOKEN in cookie or TOKEN in query or "%" in query or "+" in query


def test_token_checks():
    assert auth.check(TOKEN, f"a=b; {auth.COOKIE_NAME}={TOKEN}; c", "") == "cookie"
    assert auth.check(TOKEN, None, f"x=1&token={TOKEN}") == "url"
    assert auth.check(TOKEN, f"{auth.COOKIE_NAME}={TOKEN}x", f"token={TOKEN[:5]}") is None
    assert auth.check(TOKEN, None, "token=" + "a" * 10000) is None
    assert len(auth.new_token()) >= 32 and auth.new_token() != auth.new_token()


@given(st.binary(max_size=600), st.sampled_from(["cbor_v1", "text"]))
@settings(max_examples=300, deadline=None)
def test_split_records_never_raises(blob, schema):
    records, used = split_records(blob, schema)
    assert used == len(blob)
    assert all(isinstance(r.text, str) for r in records)


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_log_event_never_raises(line):
    event = log_event(line)
    assert event is None or event.worker in line


def test_spec_records_and_log_lines():
    vector = bytes.fromhex("a46274731b0000018bcfe568006373657101646b696e6401677061796c6f61644b"
                           "6865617274626561742031")      # SPEC §7.5
    records, _ = split_records(vector * 2, "cbor_v1")
    assert [r.beat for r in records] == [1, 1]
    assert records[0].text == 'seq=1 ts=1700000000000 kind=heartbeat payload="heartbeat 1"'
    assert [r.beat for r in split_records(b"heartbeat 4\nhello\n", "text")[0]] == [4, None]
    assert log_event("spawned worker-3 ticks=5 ttl=inf ops=inf").kind == "spawned"
    assert log_event("spawned worker-2 gpu=GPU-0 ttl=120 streams=2").gpu == "GPU-0"
    assert log_event("revoked worker-2: killed by queen").kind == "gone"
    assert log_event("killed worker-2") is None


@pytest.mark.parametrize("wid,w2,w1", [("worker-1", "13", "1"), ("worker-2", "1c", "1"), ("worker-3", "1a", "1"),
                                       ("worker-4", "c2", "c"), ("worker-10", "bf", "b"), ("worker-123", "18", "1")])
def test_shard_labels_follow_the_spec_vectors(wid, w2, w1):
    assert (shard_label(wid, 2), shard_label(wid, 1)) == (w2, w1)
    sharded = BootFacts.parse("manifest.schema=1.2\nsharding enable=true width=1 legacy_worker_alias=false\n")
    assert (sharded.sharding, sharded.width, sharded.legacy_alias) == (True, 1, False)
    assert sharded.group(wid) == w1
    assert sharded.worker_dir(wid) == f"/shard/{w1}/worker/{wid}"
    flat = BootFacts.parse("sharding enable=false width=2 legacy_worker_alias=true\n")
    assert flat.group(wid) == ALL_GROUP and flat.worker_dir(wid) == f"/worker/{wid}"


def test_ring_slice_is_bounded_and_prefers_unread_workers():
    collector = Collector(lambda n: None, ring_budget=3)
    collector.boot = BootFacts()
    for i in range(1, 9):
        collector.workers[f"worker-{i}"] = WorkerView(f"worker-{i}", ALL_GROUP, visited=i <= 6)
    first = collector._slice()
    assert first[:2] == ["worker-7", "worker-8"] and len(first) == 3
    for wid in collector.workers:
        collector.workers[wid].visited = True
    seen: list[str] = []
    for _ in range(3):
        chunk = collector._slice()
        assert len(chunk) == 3
        seen += chunk
    assert set(seen) == set(collector.workers)          # round robin covers everyone in 3 ticks


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_boot_facts_parse_never_raises(text):
    facts = BootFacts.parse(text)
    assert facts.width in (1, 2) and facts.group("worker-1") in (ALL_GROUP, "1", "13")


_values = st.one_of(st.none(), st.booleans(), st.integers(min_value=-5, max_value=1 << 70), st.text(max_size=12),
                    st.from_regex(r"[0-9]{1,6}", fullmatch=True), st.just("GPU-0"), st.just("worker-3"))


_ALLOWED = {"spawn-heartbeat": ["ticks", "ttl_s", "ops"],
            "spawn-gpu": ["gpu_id", "mem_mb", "streams", "ttl_s", "priority", "ops"],
            "kill": ["worker"], "commit": ["worker"]}
_KINDS = st.one_of(st.sampled_from(sorted(_ALLOWED)), _values)
_good = st.one_of(st.from_regex(r"[0-9]{1,6}", fullmatch=True), st.just("GPU-0"), st.just("worker-3"),
                  st.integers(min_value=0, max_value=99))


@st.composite
def _FIELDS_FOR(draw, kind):
    allowed = _ALLOWED.get(kind, ["ticks", "worker"])
    required = {"spawn-heartbeat": {"ticks"}, "spawn-gpu": {"gpu_id", "mem_mb", "streams", "ttl_s"}}.get(
        kind, set(allowed))
    keys = set(required) | draw(st.sets(st.sampled_from(allowed)))
    if draw(st.integers(0, 4)) == 0:
        keys.discard(draw(st.sampled_from(sorted(keys))))
    if draw(st.integers(0, 9)) == 0:
        keys.add(draw(st.sampled_from(["junk", "action2", "ticks", "gpu_id"])))
    good = {k: st.just("GPU-0") if k == "gpu_id" else st.just("worker-3") if k == "worker" else _good
            for k in keys}
    return {k: draw(st.one_of(good[k], good[k], good[k], _values)) for k in keys}


_FIELDS = _KINDS.flatmap(lambda kind: st.tuples(st.just(kind), _FIELDS_FOR(kind if isinstance(kind, str) else "")))


@given(_FIELDS)
@settings(max_examples=300, deadline=None)
def test_any_action_is_refused_or_becomes_one_shell_command(drawn):
    """Whatever the page sends: an ActionError, or exactly one shell command whose translation is the
    shell's ctl write (or consume) — never a second option smuggled into the line."""
    kind_value, fields = drawn
    action = {"action": kind_value, **fields}
    try:
        kind, line = shell_line(action)
    except ActionError:
        return
    command = translate(line)
    assert isinstance(command, Command), (action, line, command)
    given_fields = sum(1 for k, v in fields.items() if v not in (None, ""))
    if kind == "commit":
        assert command.name == "consume" and command.worker == str(action["worker"]).strip()
    elif kind == "kill":
        wid = str(action['worker']).strip()
        assert line == f"kill {wid}" and command.wire == f'ECHO /queen/ctl {{"kill":"{wid}"}}'
    else:
        assert command.wire.startswith("ECHO /queen/ctl {") and "\n" not in command.wire
        assert len(line.split()) == 2 + given_fields
