"""Frames for the fault runs, built and taken apart with scapy (host side only, never in the guest).

Two sources: frames made from nothing (the RX flood, hostile TCP segments to the guest's ports) and
mutations of real guest-bound frames that the NIC tap's mirror copied from live traffic. Every mutation
keeps the property the run relies on: a corrupted frame carries a wrong IP or TCP checksum, so a correct
stack drops it and the live stream is unchanged; duplicates and reordered copies are the real frames,
byte for byte, so TCP's sequence numbers alone must keep them out of the stream.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

GUEST_MAC = "52:54:00:12:34:56"   # QEMU's default virtio-net MAC (the image's only NIC)
NET_MAC = "52:55:0a:00:02:02"     # slirp's gateway MAC
GUEST_IP = "10.0.2.15"
NET_IP = "10.0.2.2"
DISCARD_PORT = 9                  # nothing listens there: the guest drops after the checksum check

KINDS = ("bad_tcp_csum", "bad_ip_csum", "truncated", "duplicate", "reordered", "garbage", "bad_syn")


@dataclass(frozen=True)
class Addresses:
    """Who the guest is on the wire (learned from mirrored frames; QEMU's defaults until then)."""

    guest_mac: str = GUEST_MAC
    net_mac: str = NET_MAC
    guest_ip: str = GUEST_IP
    net_ip: str = NET_IP

    @classmethod
    def learn(cls, frames: list[bytes]) -> "Addresses":
        for raw in frames:
            pkt = Ether(raw)
            if IP in pkt:
                return cls(pkt.dst, pkt.src, pkt[IP].dst, pkt[IP].src)
        return cls()


def flood_frames(addr: Addresses, count: int, payload: int = 64, seed: int = 0) -> list[bytes]:
    """``count`` valid UDP datagrams to the guest's discard port, distinct source ports (one template,
    patched: scapy builds a few thousand frames a second, a flood needs hundreds of thousands)."""
    template = bytes(Ether(dst=addr.guest_mac, src=addr.net_mac) / IP(src=addr.net_ip, dst=addr.guest_ip)
                     / UDP(sport=40000, dport=DISCARD_PORT, chksum=0) / Raw(b"\xa5" * payload))
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        sport = rng.randrange(1024, 65536)
        frame = bytearray(template)
        frame[34:36] = sport.to_bytes(2, "big")   # UDP checksum 0 = "none" (IPv4): stays valid
        out.append(bytes(frame))
    return out


def tcp_frames(frames: list[bytes]) -> list[bytes]:
    """The guest-bound IPv4 TCP frames among ``frames`` (what the corrupt-frame run mutates)."""
    return [raw for raw in frames if _tcp(raw) is not None]


def _tcp(raw: bytes):
    try:
        pkt = Ether(raw)
    except Exception:  # noqa: BLE001 - scapy raises many types on junk; junk is simply not TCP
        return None
    if IP in pkt and TCP in pkt and pkt[IP].frag == 0 and not pkt[IP].flags.MF:
        return pkt
    return None



def bad_tcp_checksum(raw: bytes, rng: random.Random) -> bytes:
    """Flip one bit of the TCP segment (header past the checksum, or payload): the checksum no longer
    matches (a one-bit change always changes a one's-complement sum)."""
    ihl = (raw[14] & 0x0F) * 4
    tcp_start = 14 + ihl
    total = int.from_bytes(raw[16:18], "big")
    end = 14 + total
    candidates = [i for i in range(tcp_start + 18, end)] or [tcp_start + 14]   # urgent ptr / window
    pos = rng.choice(candidates)
    frame = bytearray(raw)
    frame[pos] ^= 1 << rng.randrange(8)
    return bytes(frame)


def bad_ip_checksum(raw: bytes, rng: random.Random) -> bytes:
    frame = bytearray(raw)
    frame[24] ^= 1 + rng.randrange(255)          # IPv4 header checksum, high byte
    return bytes(frame)


def truncated(raw: bytes, rng: random.Random) -> bytes:
    """Cut inside the IP datagram: shorter than its own total length, so IP drops it."""
    end = 14 + int.from_bytes(raw[16:18], "big")
    return raw[:rng.randrange(14 + 1, max(14 + 2, min(end, len(raw))))]


def garbage(addr: Addresses, rng: random.Random) -> bytes:
    """An IPv4-typed frame of random bytes to the guest (random length, header and all)."""
    header = bytes(Ether(dst=addr.guest_mac, src=addr.net_mac, type=0x0800))
    return header + rng.randbytes(rng.randrange(1, 1500))


def bad_syn(addr: Addresses, port: int, rng: random.Random) -> bytes:
    """A SYN to one of the guest's listening ports with a wrong TCP checksum."""
    pkt = (Ether(dst=addr.guest_mac, src=addr.net_mac) / IP(src=addr.net_ip, dst=addr.guest_ip)
           / TCP(sport=rng.randrange(1024, 65536), dport=port, flags="S", seq=rng.randrange(1 << 32)))
    raw = bytearray(bytes(pkt))
    raw[14 + 20 + 16] ^= 0x5A                     # TCP checksum, high byte
    return bytes(raw)


@dataclass
class Mangler:
    """Turns mirrored live frames into the corrupt-frame run's injections, counting each kind."""

    addr: Addresses
    ports: tuple[int, ...]
    seed: int = 0
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._held: list[bytes] = []             # valid copies waiting to be delivered out of order

    def batch(self, live: list[bytes]) -> list[bytes]:
        """Injections for one batch of mirrored frames: per live TCP frame one corrupted variant and
        sometimes a duplicate; every few frames a held copy is released late (reordered); plus garbage
        and a bad-checksum SYN per batch."""
        rng, out = self._rng, []
        for raw in tcp_frames(live):
            kind = rng.choice(("bad_tcp_csum", "bad_ip_csum", "truncated"))
            out.append({"bad_tcp_csum": bad_tcp_checksum, "bad_ip_csum": bad_ip_checksum,
                        "truncated": truncated}[kind](raw, rng))
            self.counts[kind] += 1
            if rng.random() < 0.3:
                out.append(raw)
                self.counts["duplicate"] += 1
            if rng.random() < 0.3:
                self._held.append(raw)
            if len(self._held) > 4:
                out.append(self._held.pop(0))
                self.counts["reordered"] += 1
        out.append(garbage(self.addr, rng))
        self.counts["garbage"] += 1
        if self.ports:
            out.append(bad_syn(self.addr, rng.choice(self.ports), rng))
            self.counts["bad_syn"] += 1
        rng.shuffle(out)
        return out

    def flush(self) -> list[bytes]:
        """The copies still held, delivered last (the latest reordering of all)."""
        held, self._held = self._held, []
        self.counts["reordered"] += len(held)
        return held
