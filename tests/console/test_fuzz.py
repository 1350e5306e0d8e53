"""Property/fuzz tests: framing round trips, and the dispatcher never breaks on arbitrary input."""
from __future__ import annotations

import re
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nine_door.config import NineDoorConfig
from nine_door.server import NineDoor
from root_task.console.context import ConsoleConfig, ConsoleContext
from root_task.console.framing import Frame, FrameDecoder, Lost, Oversize, encode_frame
from root_task.console.line_editor import clean_payload
from root_task.console.session import ConsoleSession

ACK = re.compile(r"^(OK [A-Z]+( .*)?|ERR [A-Z]+ reason=(busy|quota|cut|policy) detail=[a-z-]+.*)$")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=20), st.integers(1, 97))
def test_frames_round_trip_any_chunking(texts, cut):
    stream = b"".join(encode_frame(t) for t in texts)
    dec = FrameDecoder()
    events = []
    for i in range(0, len(stream), cut):
        events.extend(dec.feed(stream[i:i + cut]))
    assert events == [Frame(t.encode()) for t in texts]


@settings(max_examples=100, deadline=None)
@given(st.integers(8193, 1 << 20), st.text(max_size=20))
def test_oversize_skipped_then_next_frame(size, text):
    dec = FrameDecoder()
    events = dec.feed(struct.pack("<I", size))
    events += dec.feed(b"\0" * (size - 4))
    events += dec.feed(encode_frame(text))
    assert events == [Oversize(size), Frame(text.encode())]


@given(st.one_of(st.integers(0, 3), st.integers((1 << 20) + 1, 0xFFFFFFFF)))
def test_lost_framing(total):
    dec = FrameDecoder()
    assert dec.feed(struct.pack("<I", total) + b"more") == [Lost(total)]
    assert dec.feed(encode_frame("PING")) == []


def _queen_session():
    door = NineDoor(NineDoorConfig(ticket_secrets={"queen": "bootstrap", "worker-heartbeat": "worker"}))
    ctx = ConsoleContext(door=door, config=ConsoleConfig(ticket_secrets={"worker-heartbeat": "worker"}))
    s = ConsoleSession(ctx, transport="tcp", origin_key="127.0.0.1", origin_label="tcp:127.0.0.1",
                       conn_id="1", audit=lambda line: None)
    s.authenticate()
    assert s.handle_line("attach queen").lines == ("OK ATTACH role=queen",)
    return s


VERB_WORDS = ["cat", "ls", "tail", "echo", "spawn", "kill", "attach", "log", "bi", "caps", "mem", "quit",
              "ping", "help", "CAT", "Echo"]
ARGS = st.one_of(st.sampled_from(["/", "/proc/boot", "/log/queen.log", "/queen/ctl", "/worker",
                                  "/proc/../x", "//", "/nope", "worker-1", '{"spawn":"heartbeat","ticks":1}',
                                  '{"kill":"worker-1"}', "queen", "worker", "b64:AAAA"]),
                 st.text(max_size=40))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(VERB_WORDS), st.lists(ARGS, max_size=3)), max_size=12))
def test_dispatcher_total_against_real_ninedoor(commands):
    """Arbitrary verb/argument mixes: never raises; every reply is acks/streams of the §10.6 grammar."""
    s = _queen_session()
    for verb, args in commands:
        line = clean_payload(" ".join([verb, *args]).encode())
        reply = s.handle_line(line)
        lines = list(reply.lines)
        assert lines, line
        if lines[0] == "PONG":
            lines = lines[1:]
        assert ACK.match(lines[0]), lines[0]
        if len(lines) > 1:
            assert lines[-1] == "END"
            assert all("\n" not in x and "\r" not in x and len(x.encode()) <= 4096 for x in lines)
