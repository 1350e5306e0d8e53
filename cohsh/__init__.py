"""cohsh — the Cohesix operator CLI (SPEC §11).

The package is split so every piece can be tested without a running system:
``commands`` turns shell lines into console wire lines, ``script`` parses and runs `.coh` files,
``transport_tcp`` speaks the framed console protocol (SPEC §10.4, §11.6), ``transport_mock`` and
``transport_qemu`` only decide where the console socket comes from, ``shell`` prints results, and
``cli`` wires options, environment and exit codes together.
"""
