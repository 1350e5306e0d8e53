"""Fault injection against the booted guest (issue 19): link resets, RX floods and corrupt frames.

``tapwire`` speaks to QEMU's net filters (qemu/launch.py ``NicTap``), ``frames`` builds and mutates
frames with scapy, ``probes`` reads the serial console and the tick meter, ``traffic`` runs the live
9P and console clients and checks exactly-once, ``runs`` puts them together. ``doit faults`` runs
:data:`runs.FULL`; tests/qemu/test_faults.py runs :data:`runs.QUICK`. Host-side only.
"""
