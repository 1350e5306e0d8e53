"""NineDoor: the Secure9P server (a strict subset of 9P2000.L) and its namespace.

Guest code: imports only the standard library, ``construct`` and ``cbor2``.
"""
