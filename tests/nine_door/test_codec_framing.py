"""Stream and message framing (SPEC §3.10, §3.12, §3.14): FrameReader, split_batch, frame_size."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from nine_door import codec
from nine_door import messages as m
from nine_door.errors import FramingLost

FRAMES = [
    codec.encode(m.Tversion(m.NOTAG, 8192, "9P2000.L")),
    codec.encode(m.Tattach(1, 0, m.NOFID, "queen", "", m.NOFID)),
    codec.encode(m.Twrite(2, 1, 0, b"x" * 700)),
    codec.encode(m.Tclunk(3, 1)),
]


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAMES), min_size=1, max_size=8),
       st.lists(st.integers(0, 10_000), max_size=12))
def test_stream_reader_reassembles_any_chunking(frames, cuts):
    reader = codec.FrameReader()
    data = b"".join(frames)
    out = []
    for chunk in _chunks(data, cuts):
        out.extend(reader.feed(chunk))
    assert out == frames
    assert reader.buffered == 0


@settings(max_examples=100, deadline=None)
@given(st.integers(513, 4096), st.lists(st.integers(0, 20_000), max_size=10))
def test_oversize_frames_are_skipped_under_any_chunking(msize, cuts):
    big = codec.encode(m.Twrite(9, 1, 0, bytes(msize)))      # msize + 23 bytes > msize
    small = FRAMES[3]
    reader = codec.FrameReader(msize=msize)
    out = []
    for chunk in _chunks(small + big + small, cuts):
        out.extend(reader.feed(chunk))
    assert out == [small, codec.Oversize(9, len(big)), small]


def test_msize_change_applies_to_frames_not_yet_popped():
    # After Tversion negotiates a smaller msize the server lowers reader.msize; frames already
    # buffered behind the Tversion are judged with the new limit when popped.
    mid = codec.encode(m.Twrite(5, 1, 0, bytes(600)))
    reader = codec.FrameReader(msize=8192)
    reader.push(FRAMES[0] + mid)
    assert reader.pop() == FRAMES[0]
    reader.msize = 512
    assert reader.pop() == codec.Oversize(5, len(mid))
    assert reader.pop() is None


def test_framing_lost_is_sticky():
    reader = codec.FrameReader()
    with pytest.raises(FramingLost):
        reader.feed(b"\x03\x00\x00\x00")
    with pytest.raises(FramingLost):
        reader.feed(FRAMES[0])


def test_frames_before_a_broken_size_are_still_delivered_by_pop():
    reader = codec.FrameReader()
    reader.push(FRAMES[0] + b"\x00\x00\x00\x00")
    assert reader.pop() == FRAMES[0]
    with pytest.raises(FramingLost):
        reader.pop()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAMES), min_size=1, max_size=6))
def test_split_batch_returns_the_frames(frames):
    assert codec.split_batch(b"".join(frames)) == frames


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAMES), min_size=1, max_size=6), st.data())
def test_split_batch_rejects_any_cut_inside_a_frame(frames, data):
    blob = b"".join(frames)
    boundaries = {0}
    for f in frames:
        boundaries.add(max(boundaries) + len(f))
    cut = data.draw(st.integers(1, len(blob) - 1).filter(lambda c: c not in boundaries)) \
        if len(blob) > 1 and len(boundaries) <= len(blob) else None
    if cut is None:
        return
    with pytest.raises(FramingLost):
        codec.split_batch(blob[:cut])


def test_split_batch_rejects_empty_messages_and_huge_sizes():
    with pytest.raises(FramingLost):
        codec.split_batch(b"")
    with pytest.raises(FramingLost):
        codec.split_batch((m.MAX_FRAME + 1).to_bytes(4, "little") + bytes(10))


def test_frame_size():
    assert codec.frame_size(b"\x15\x00") is None
    assert codec.frame_size(FRAMES[0]) == len(FRAMES[0])
    with pytest.raises(FramingLost):
        codec.frame_size(b"\x06\x00\x00\x00")
    with pytest.raises(FramingLost):
        codec.frame_size((m.MAX_FRAME + 1).to_bytes(4, "little"))
    assert codec.frame_size(m.MAX_FRAME.to_bytes(4, "little")) == m.MAX_FRAME


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAMES), min_size=1, max_size=8),
       st.lists(st.integers(0, 10_000), max_size=12), st.integers(1, 5), st.booleans())
def test_frame_boundaries_agree_with_the_reader_under_any_chunking_and_budget(frames, cuts, budget, bad_tail):
    """The TCP listener's use: walk each received chunk with a frame budget, hand ``chunk[:cut]`` on,
    offer the rest again. Whatever the chunking and budget, the reader gets exactly the frames, the
    counts add up, and a bad size field is reported where it starts (a size field split across chunks:
    its first bytes were handed on with the chunk before, and the loss is reported at the next)."""
    from nine_door.framing import FrameBoundaries
    good = b"".join(frames)
    data = good + (b"\x03\x00\x00\x00" if bad_tail else b"")
    bounds, reader = FrameBoundaries(), codec.FrameReader()
    handed, counted, out, lost_at = 0, 0, [], None
    for chunk in _chunks(data, cuts):
        while chunk and lost_at is None:
            cut, n, lost = bounds.advance(chunk, budget)
            assert n <= budget
            counted += n
            out.extend(reader.feed(chunk[:cut]))
            handed += cut
            if lost is not None:
                lost_at = handed
            chunk = chunk[cut:]
            if not cut and lost is None:
                break                                  # nothing more to take from this chunk
    assert out == frames and counted == len(frames)
    if bad_tail:      # where the bad size field starts, or after its first bytes when it straddles chunks
        assert lost_at is not None and len(good) <= lost_at < len(good) + 4
    else:
        assert lost_at is None and handed == len(good) and bounds.idle
