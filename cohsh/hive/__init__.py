"""``cohsh hive``: a live view of a Cohesix hive in the browser (docs/hive.md).

Why it lives inside cohsh: the page shows nothing the operator could not read with ``cohsh`` itself,
and it must read it the same way — every byte comes from 9P reads through ``cohsh.pool.Pool`` (the
session pool of SPEC §11.7), and every action is the ctl write the shell makes. The modules:

* :mod:`cohsh.hive.auth` — the session token and its cookie (loopback + token, nothing served without it);
* :mod:`cohsh.hive.sse` — server-sent-event framing (and a parser, for tests and the bench);
* :mod:`cohsh.hive.model` — shard labels (SPEC §8), ``/proc/boot`` facts, record decoding;
* :mod:`cohsh.hive.collector` — the poller: bounded 9P reads per tick, deltas for the page;
* :mod:`cohsh.hive.actions` — page actions → the shell's own ctl writes;
* :mod:`cohsh.hive.server` — the HTTP layer (stdlib ``ThreadingHTTPServer``);
* :mod:`cohsh.hive.cli` — ``cohsh hive [--listen HOST:PORT]``.
"""
