"""Host-side pieces of the fault runs (qemu/faults): the NIC tap wire codec, the frame mutations, the
tick-gap meter and the exactly-once audit. The QEMU runs themselves are tests/qemu/test_faults.py."""
from __future__ import annotations

import random
import socket
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from qemu.faults import frames as fr
from qemu.faults.probes import TickGapMeter, watch_stamps
from qemu.faults.runs import fault_ir_text
from qemu.faults.tapwire import MAX_FRAME, Injector, Mirror, TapDecoder, TapWireError, encode_frame
from qemu.faults.traffic import Ledger, audit
from qemu.launch import GuestPorts, NicTap, qemu_command

frame_bytes = st.binary(min_size=1, max_size=2000)


# -- the tap wire -------------------------------------------------------------------------------------------
@given(st.lists(frame_bytes, max_size=20), st.lists(st.integers(1, 500), min_size=1, max_size=50))
def test_decoder_returns_every_frame_whatever_the_split(frames, cuts):
    stream = b"".join(encode_frame(f) for f in frames)
    decoder, out, pos = TapDecoder(), [], 0
    for cut in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        out += decoder.feed(stream[pos:pos + cut])
        pos += cut
        if pos >= len(stream):
            break
    out += decoder.feed(stream[pos:])
    assert out == frames and decoder.pending == 0


@given(st.binary(max_size=3000))
@settings(max_examples=300)
def test_decoder_on_arbitrary_bytes_returns_frames_or_says_out_of_step(data):
    decoder = TapDecoder()
    try:
        got = decoder.feed(data)
    except TapWireError as exc:
        assert "out of step" in str(exc)
        return
    assert sum(4 + len(f) for f in got) + decoder.pending == len(data)
    assert all(0 < len(f) <= MAX_FRAME for f in got)


@pytest.mark.parametrize("length", [0, MAX_FRAME + 1, 0xFFFFFFFF])
def test_impossible_lengths_are_refused(length):
    with pytest.raises(TapWireError):
        TapDecoder().feed(struct.pack("!I", length) + b"x")
    if length:
        with pytest.raises(TapWireError):
            encode_frame(b"x" * min(length, MAX_FRAME + 1))


def test_injector_and_mirror_speak_qemus_wire(tmp_path):
    inject_path, mirror_path = tmp_path / "inject.sock", tmp_path / "mirror.sock"
    servers = []
    for path in (inject_path, mirror_path):
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(str(path))
        srv.listen(1)
        servers.append(srv)
    accepted = {}
    thread = threading.Thread(target=lambda: accepted.update(inj=servers[0].accept()[0], mir=servers[1].accept()[0]))
    thread.start()
    injector, mirror = Injector(inject_path), Mirror(mirror_path)
    thread.join(5)
    injector.send_many([b"one", b"two"])
    received = TapDecoder().feed(accepted["inj"].recv(100))
    assert received == [b"one", b"two"] and injector.sent == 2
    accepted["mir"].sendall(encode_frame(b"a") + encode_frame(b"bb")[:3])
    accepted["mir"].sendall(encode_frame(b"bb")[3:])
    for _ in range(100):
        if mirror.seen == 2:
            break
        threading.Event().wait(0.01)
    assert mirror.take() == [b"a", b"bb"] and mirror.take() == []
    mirror.close()
    injector.close()
    for sock in (*accepted.values(), *servers):
        sock.close()


def test_qemu_command_adds_the_tap_filters_only_with_user_networking():
    tap = NicTap(mirror="/run/m.sock", inject="/run/i.sock")
    ports = GuestPorts(console=31337, ninep=564, ninep_enabled=True)
    cmd = qemu_command("Image", "rootfs.cpio", guest=ports, nic_tap=tap, qemu="sh")
    joined = " ".join(cmd)
    assert "filter-mirror,id=tapmirror0,netdev=n0,queue=tx,outdev=tapmirror" in joined
    assert "filter-redirector,id=tapinject0,netdev=n0,queue=tx,indev=tapinject" in joined
    assert joined.index("filter-mirror") < joined.index("filter-redirector")   # injected frames not mirrored
    assert "tap" not in " ".join(qemu_command("Image", "rootfs.cpio", guest=ports, qemu="sh"))
    with pytest.raises(ValueError):
        qemu_command("Image", "rootfs.cpio", guest=ports, net="none", nic_tap=tap, qemu="sh")


# -- frames -------------------------------------------------------------------------------------------------
def live_segment(payload: bytes = b"Twrite payload") -> bytes:
    pkt = (Ether(dst=fr.GUEST_MAC, src=fr.NET_MAC) / IP(src=fr.NET_IP, dst=fr.GUEST_IP)
           / TCP(sport=51000, dport=564, flags="PA", seq=1000, ack=2000) / Raw(payload))
    return bytes(pkt)


def recomputed(raw: bytes) -> tuple[int, int, int, int]:
    """(ip checksum carried, ip checksum correct, tcp carried, tcp correct)."""
    pkt = Ether(raw)
    fresh = pkt.copy()
    del fresh[IP].chksum
    del fresh[TCP].chksum
    fresh = Ether(bytes(fresh))
    return pkt[IP].chksum, fresh[IP].chksum, pkt[TCP].chksum, fresh[TCP].chksum


@given(st.binary(min_size=0, max_size=200), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_bad_tcp_checksum_always_leaves_a_wrong_checksum(payload, seed):
    raw = live_segment(payload)
    bad = fr.bad_tcp_checksum(raw, random.Random(seed))
    ip_carried, ip_right, tcp_carried, tcp_right = recomputed(bad)
    assert ip_carried == ip_right and tcp_carried != tcp_right and len(bad) == len(raw)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_bad_ip_checksum_and_truncation_break_the_datagram(seed):
    raw = live_segment()
    ip_carried, ip_right, _, _ = recomputed(fr.bad_ip_checksum(raw, random.Random(seed)))
    assert ip_carried != ip_right
    cut = fr.truncated(raw, random.Random(seed))
    assert 14 < len(cut) < 14 + int.from_bytes(raw[16:18], "big")


def test_flood_frames_are_valid_udp_to_the_guest():
    frames = fr.flood_frames(fr.Addresses(), 50, seed=3)
    assert len(frames) == 50 and len({f[34:36] for f in frames}) > 40
    for raw in frames[:5]:
        pkt = Ether(raw)
        assert pkt.dst == fr.GUEST_MAC and pkt[IP].dst == fr.GUEST_IP and pkt[UDP].dport == fr.DISCARD_PORT
        fresh = pkt.copy()
        del fresh[IP].chksum
        assert Ether(bytes(fresh))[IP].chksum == pkt[IP].chksum and pkt[UDP].chksum == 0


def test_mangler_makes_every_kind_and_holds_copies_for_reordering():
    mangler = fr.Mangler(fr.Addresses(), (564, 31337), seed=7)
    live = [live_segment(f"record {i}".encode()) for i in range(40)]
    out = []
    for i in range(0, 40, 4):
        out += mangler.batch(live[i:i + 4] + [b"\x00" * 20])     # junk in the mirror is skipped
    out += mangler.flush()
    for kind in fr.KINDS:
        assert mangler.counts[kind] > 0, kind
    assert sum(mangler.counts.values()) == len(out)
    copies = [raw for raw in out if raw in live]
    assert len(copies) == mangler.counts["duplicate"] + mangler.counts["reordered"]


def test_addresses_are_learned_from_mirrored_frames():
    raw = bytes(Ether(dst="52:54:00:aa:bb:cc", src="52:55:0a:00:02:02") / IP(src="10.0.2.2", dst="10.0.2.16")
                / TCP())
    assert fr.Addresses.learn([b"\xff" * 20, raw]) == fr.Addresses("52:54:00:aa:bb:cc", "52:55:0a:00:02:02",
                                                                   "10.0.2.16", "10.0.2.2")
    assert fr.Addresses.learn([]) == fr.Addresses()


# -- tick meter and audit -----------------------------------------------------------------------------------
def test_tick_gap_meter_counts_only_gaps_between_lines_known_to_be_consecutive():
    meter = TickGapMeter(100)
    meter.baseline([100, 200, 300])
    meter.feed([200, 300, 400, 900])        # overlaps the baseline: the 500 ms stall counts
    assert meter.max_gap_ms == 500 and meter.lines == 2
    meter.feed([5000, 5100])                # no overlap: lines were evicted unseen, no gap invented
    assert meter.max_gap_ms == 500 and meter.blind_spots == 1
    meter.feed([5100, 5200, 5900])
    assert meter.max_gap_ms == 700


def test_watch_stamps_skip_other_console_lines():
    lines = ["audit tcp.conn.open conn_id=1", "watch ts_ms=107 p50_ms=0.000 p95_ms=0.000 queued=0",
             "OK CAT path=/proc/ingest/watch data=watch ts_ms=208 p50_ms=1", "watch ts_ms=x"]
    assert watch_stamps(lines) == [107, 208]


def test_audit_counts_lost_doubled_and_unacknowledged_records():
    ledger = Ledger("run", acked=[1, 2, 3, 4])
    held = [b"run-1", b"run-2", b"run-2", b"run-4", b"run-5", b"other-3", b"heartbeat 9"]
    check = audit(ledger, held)
    assert (check.stored, check.lost, check.doubled, check.unknown) == (5, 1, 1, 1) and not check.ok
    assert audit(ledger, [b"run-1", b"run-2", b"run-3", b"run-4"]).ok


def test_fault_ir_turns_the_listener_on_and_the_watch_interval_down():
    base = ("[secure9p.tcp_listener]\nenable = false\nport = 564\n\n[observability]\n"
            "proc_ingest = { fields = [], watch_interval_ms = 1000 }\n")
    text = fault_ir_text(base)
    assert "enable = true\nport = 564" in text and "watch_interval_ms = 100 " in text
    with pytest.raises(ValueError):
        fault_ir_text("[secure9p.tcp_listener]\nenable = false\n")


@given(st.lists(st.integers(0, 10**9), max_size=30), st.lists(st.text(max_size=40), max_size=10))
def test_watch_stamps_property_every_watch_line_and_nothing_else(stamps, noise):
    lines = [f"watch ts_ms={s} p50_ms=0.000 p95_ms=0.000 queued=0 backpressure=0 dropped=0" for s in stamps]
    noise = [n for n in noise if "ts_ms=" not in n]
    assert watch_stamps(noise + lines + noise) == stamps


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=40), st.integers(1, 10))
def test_tick_gap_meter_property_overlapping_snapshots_give_the_true_largest_gap(stamps, window):
    stamps = sorted(set(stamps))
    meter = TickGapMeter(100)
    for i in range(0, len(stamps), window):
        meter.feed(stamps[max(0, i - 1):i + window])    # each snapshot overlaps the last by one line
    true_gap = max((b - a for a, b in zip(stamps, stamps[1:])), default=0)
    assert meter.max_gap_ms == true_gap and meter.blind_spots == 0 and meter.lines == len(stamps)
