"""Reference worker programs (SPEC §6.4): small processes whose only capability is one 9P channel.

Guest code: imports only the standard library, ``construct``, ``cbor2`` and ``nine_door``.
"""
