"""Line discipline (SPEC §10.2, §10.3): unit and property tests."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from root_task.console.line_editor import (LineEditor, Line, TooLong, clean_payload, decoded_length)


def feed_all(editor: LineEditor, chunks) -> tuple[list, bytes]:
    events, echo = [], b""
    for chunk in chunks:
        result = editor.feed(chunk)
        events.extend(result.events)
        echo += result.echo
    return events, echo


def test_simple_line_and_echo():
    ed = LineEditor()
    res = ed.feed(b"ping\n")
    assert res.events == (Line("ping"),)
    assert res.echo == b"ping\n"


def test_cr_ignored_and_crlf_ends_once():
    ed = LineEditor()
    assert ed.feed(b"help\r\n").events == (Line("help"),)
    assert ed.feed(b"a\rb\n").events == (Line("ab"),)


def test_backspace_and_del_delete_previous_char_with_echo():
    ed = LineEditor()
    res = ed.feed(b"pinx\x08g\n")
    assert res.events == (Line("ping"),)
    assert res.echo == b"pinx\b \bg\n"
    res = ed.feed(b"ab\x7f\x7f\x7fc\n")   # extra delete on empty line: nothing, no echo
    assert res.events == (Line("c"),)
    assert res.echo == b"ab\b \b\b \bc\n"


def test_backspace_deletes_whole_multibyte_character():
    ed = LineEditor()
    assert ed.feed("é\x08x\n".encode()).events == (Line("x"),)


def test_control_chars_dropped_tab_becomes_space():
    ed = LineEditor()
    assert ed.feed(b"ca\x01t\x1b\t/proc\x00\n").events == (Line("cat /proc"),)


def test_invalid_utf8_dropped_and_split_sequences_joined():
    ed = LineEditor()
    events, _ = feed_all(ed, [b"a\xff\xfeb", "é".encode()[:1], "é".encode()[1:], b"\n"])
    assert events == [Line("abé")]


def test_line_limit_exact_and_over():
    ed = LineEditor(max_line=4)
    assert ed.feed(b"abcd\n").events == (Line("abcd"),)
    res = ed.feed(b"abcde\n")
    assert res.events == (TooLong(5),)
    assert ed.idle
    # the next line is unaffected
    assert ed.feed(b"ok\n").events == (Line("ok"),)


def test_overflowed_line_stays_too_long_after_deletes():
    ed = LineEditor(max_line=3)
    assert ed.feed(b"abcdef\x08\x08\x08\n").events[0].__class__ is TooLong


def test_pending_and_idle():
    ed = LineEditor()
    ed.feed(b"ca")
    assert ed.pending == "ca" and not ed.idle
    ed.feed(b"t\n")
    assert ed.idle and ed.pending == ""


def test_no_echo_mode():
    ed = LineEditor(echo=False)
    assert ed.feed(b"x\x08y\n").echo == b""


def test_clean_payload_tcp_rules():
    assert clean_payload(b"PING\r\n") == "PING"
    assert clean_payload(b"ca\x08at\t/x\x01") == "cat /x"
    assert clean_payload(b"\xffok") == "ok"
    assert decoded_length("é".encode() * 3 + b"\xff") == 3


# -- properties --------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
def test_property_chunking_is_irrelevant(data, cut):
    """Feeding bytes in any chunking yields the same lines and echo as feeding them at once."""
    whole = LineEditor(max_line=32)
    ev1 = list(whole.feed(data).events)
    chunked = LineEditor(max_line=32)
    ev2, _ = feed_all(chunked, [data[i:i + cut] for i in range(0, len(data), cut)])
    assert ev1 == ev2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_property_lines_are_clean_and_bounded(data):
    ed = LineEditor(max_line=40)
    events = ed.feed(data + b"\n").events
    assert len(events) == data.count(b"\n") + 1
    for ev in events:
        if isinstance(ev, Line):
            assert len(ev.text) <= 40
            assert not any(ord(c) < 0x20 or c == "\x7f" for c in ev.text)
        else:
            assert ev.length > 40


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_property_printable_text_round_trips(text):
    ed = LineEditor(max_line=64)
    res = ed.feed(text.encode() + b"\n")
    assert res.events == (Line(text),)
    assert res.echo == text.encode() + b"\n"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_property_clean_payload_matches_editor(data):
    """A TCP frame payload and a serial line (without \\n) are edited identically."""
    body = data.replace(b"\n", b"")
    ed = LineEditor(max_line=10_000)
    (event,) = ed.feed(body + b"\n").events
    assert clean_payload(body) == event.text
