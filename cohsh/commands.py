"""Shell commands (SPEC §11.4) → console wire lines.

Why a pure translation layer: the script checker, the REPL and one-shot mode must agree exactly on
what a command means, and local refusals (bad path, missing ticket, unknown spawn option) must look
like server refusals so scripts can ``EXPECT ERR`` them. Nothing here touches the network.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from nine_door.vocabulary import WORKER_ROLES, canonical_role  # one role vocabulary (re-exported)

# Local path rules (SPEC §11.4): absolute, valid components, depth ≤ 8, ≤ 96 characters.
MAX_PATH_CHARS = 96
MAX_PATH_DEPTH = 8


# Shell commands whose interrupted execution may be repeated after a reconnect (SPEC §11.6).
READ_ONLY = frozenset({"ping", "log", "tail", "cat", "ls"})

MSIZE_OVERFLOW_TOKEN = "{{msize_overflow}}"
MSIZE_OVERFLOW_BYTES = 8256


def msize_overflow_payload() -> str:
    """An 8256-byte JSON object: larger than any frame the console accepts (negative test)."""
    head, tail = '{"overflow":"', '"}'
    return head + "A" * (MSIZE_OVERFLOW_BYTES - len(head) - len(tail)) + tail


HELP_LINES = (
    "Cohesix command surface:",
    "attach <role> [ticket]   (alias: login; roles queen, worker-heartbeat|worker, worker-gpu)",
    "detach",
    "ping",
    "log",
    "tail [--json] <path>   (cbor_v1 rings: one line per frame; --json: one JSON object per line)",
    "cat [--json] <path>",
    "ls <path>",
    "echo <text> > <path>",
    "spawn heartbeat ticks=<n> [ttl_s=<n>] [ops=<n>] [count=<n>]   (count: spawn n workers, one ctl line each)",
    "spawn gpu gpu_id=<G> mem_mb=<n> streams=<n> ttl_s=<n> [priority=<n>] [ops=<n>]",
    "gpu   (each GPU's info, lease and last job)",
    "updates [<cas root>]   (committed CAS epochs and their manifests, default /updates)",
    "kill <worker-id>",
    "workers   (live workers grouped by shard)",
    "bind <from> <to>",
    "mount <service> <at>",
    "consume [--json] <worker-id> [max=<k>]   (read a ring from its cursor, then commit the cursor)",
    "pool bench path=<p> ops=<n> [batch=<k>] [payload=<text>]",
    "help",
    "quit",
)


@dataclass(frozen=True)
class Command:
    """A shell command ready to execute.

    ``wire`` is the console line to send, or ``None`` for commands handled locally (help, quit's
    local part). ``label`` is the canonical role for ``attach``. ``json`` is the ``--json`` option of
    ``tail``/``cat``/``consume``; ``worker`` and ``limit`` are ``consume``'s worker id and ``max=``
    (``consume`` is several console requests; its ``wire`` is the first, the cursor read).
    """

    name: str
    wire: str | None
    read_only: bool = False
    label: str | None = None
    json: bool = False
    worker: str | None = None
    limit: int | None = None
    pool: "PoolBench | None" = None
    repeat: int = 1        # ``spawn … count=<n>``: the wire line is sent n times


@dataclass(frozen=True)
class PoolBench:
    """``pool bench path=<p> ops=<n> [batch=<k>] [payload=<text>]`` (SPEC §11.7), validated."""

    path: str
    ops: int
    batch: int = 4
    payload: str = "bench"


@dataclass(frozen=True)
class LocalError:
    """A refusal produced without contacting the server; ``line`` is the synthetic response line."""

    line: str
    message: str
    print_line: bool = False  # True: print ``line`` itself (pool bench) instead of ``Error: <message>``


def policy_error(verb: str, detail: str, message: str) -> LocalError:
    return LocalError(f"ERR {verb} reason=policy detail={detail} msg={message}", message)


Translation = Command | LocalError


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a valid console path, or ``None`` when it is."""
    if len(path) > MAX_PATH_CHARS:
        return f"longer than {MAX_PATH_CHARS} characters"
    if not path.startswith("/"):
        return "must be absolute"
    if any(ch.isspace() for ch in path):
        return "contains whitespace"
    if path == "/":
        return None
    parts = path[1:].split("/")
    for part in parts:
        if part == "":
            return "empty component"
        if part in (".", ".."):
            return f"disallowed component '{part}'"
        if "\0" in part:
            return "NUL in component"
    if len(parts) > MAX_PATH_DEPTH:
        return f"depth {len(parts)} exceeds {MAX_PATH_DEPTH}"
    return None


def _check_path(verb: str, path: str) -> LocalError | None:
    problem = path_problem(path)
    if problem is None:
        return None
    return policy_error(verb, "invalid-path", f"invalid path {path}: {problem}")


def _compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def translate(line: str) -> Translation:
    """Translate one shell line (already comment-stripped and trimmed) into a command."""
    text = line.strip()
    word, _, rest = text.partition(" ")
    name = word.lower()
    rest = rest.strip()
    args = rest.split()
    handler = _HANDLERS.get(name)
    if handler is None:
        # Console verbs cohsh has no sugar for (bi, caps, mem, test, netstats, or a typo) go through
        # unchanged, so the server's own answer (e.g. ERR PARSE … unknown-verb) is what the user sees.
        return Command("raw", text)
    return handler(name, rest, args)


def _attach(name: str, rest: str, args: list[str]) -> Translation:
    if not args:
        return policy_error("ATTACH", "missing-argument", "attach requires a role")
    if len(args) > 2:
        return policy_error("ATTACH", "missing-argument", "usage: attach <role> [ticket]")
    label = canonical_role(args[0])
    ticket = args[1] if len(args) == 2 else None
    if label in WORKER_ROLES and ticket is None:
        return policy_error("ATTACH", "invalid-claims", f"role {label} requires a ticket")
    wire_role = label if label is not None else args[0]
    wire = f"ATTACH {wire_role}" + (f" {ticket}" if ticket else "")
    return Command("attach", wire, label=label)


def _no_args(wire: str | None):
    def handler(name: str, rest: str, args: list[str]) -> Translation:
        if args:
            return policy_error(name.upper(), "missing-argument", f"{name} takes no arguments")
        return Command(name, wire, read_only=name in READ_ONLY)

    return handler


def _one_path(name: str, rest: str, args: list[str]) -> Translation:
    verb = name.upper()
    if len(args) != 1:
        return policy_error(verb, "missing-argument", f"usage: {name} <path>")
    err = _check_path(verb, args[0])
    if err is not None:
        return err
    return Command(name, f"{verb} {args[0]}", read_only=name in READ_ONLY)


JSON_FLAG = "--json"


def _split_flags(verb: str, name: str, args: list[str]) -> tuple[bool, list[str]] | LocalError:
    """Remove ``--json`` (anywhere among the arguments); any other ``--`` word is refused."""
    json_mode = False
    rest: list[str] = []
    for arg in args:
        if arg == JSON_FLAG:
            json_mode = True
        elif arg.startswith("--"):
            return policy_error(verb, "missing-argument", f"{name}: unknown option {arg}")
        else:
            rest.append(arg)
    return json_mode, rest


def _read_path(name: str, rest: str, args: list[str]) -> Translation:
    """``tail``/``cat [--json] <path>``: the wire line is the plain verb; ``--json`` only changes how
    cohsh prints the content (the ack, and so the script response line, is untouched)."""
    verb = name.upper()
    split = _split_flags(verb, name, args)
    if isinstance(split, LocalError):
        return split
    json_mode, words = split
    if len(words) != 1:
        return policy_error(verb, "missing-argument", f"usage: {name} [--json] <path>")
    err = _check_path(verb, words[0])
    if err is not None:
        return err
    return Command(name, f"{verb} {words[0]}", read_only=True, json=json_mode)


def ring_paths(worker_id: str) -> tuple[str, str]:
    """``(/worker/<id>/cursor, /worker/<id>/telemetry)``."""
    return f"/worker/{worker_id}/cursor", f"/worker/{worker_id}/telemetry"


def _consume(name: str, rest: str, args: list[str]) -> Translation:
    usage = "usage: consume [--json] <worker-id> [max=<k>]"
    split = _split_flags("CONSUME", name, args)
    if isinstance(split, LocalError):
        return split
    json_mode, words = split
    limit: int | None = None
    positional: list[str] = []
    for word in words:
        key, eq, value = word.partition("=")
        if eq and key == "max":
            if not value.isascii() or not value.isdigit():
                return policy_error("CONSUME", "invalid-payload", "max must be a non-negative integer")
            limit = int(value)
        elif eq:
            return policy_error("CONSUME", "invalid-payload", f"unknown consume option {key}")
        else:
            positional.append(word)
    if len(positional) != 1:
        return policy_error("CONSUME", "missing-argument", usage)
    worker_id = positional[0]
    if "/" in worker_id:
        return policy_error("CONSUME", "invalid-path", f"invalid worker id {worker_id}: contains '/'")
    cursor_path, ring_path = ring_paths(worker_id)
    for path in (cursor_path, ring_path):
        err = _check_path("CONSUME", path)
        if err is not None:
            return err
    return Command("consume", f"CAT {cursor_path}", json=json_mode, worker=worker_id, limit=limit)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _echo(name: str, rest: str, args: list[str]) -> Translation:
    text, sep, path = rest.partition(">")
    path = path.strip()
    if not sep or not path:
        return policy_error("ECHO", "missing-argument", "usage: echo <text> > <path>")
    err = _check_path("ECHO", path)
    if err is not None:
        return err
    payload = _unquote(text.strip())
    if payload == MSIZE_OVERFLOW_TOKEN:
        payload = msize_overflow_payload()
    wire = f"ECHO {path} {payload}" if payload else f"ECHO {path}"
    return Command("echo", wire)


def _ctl(name: str, obj: object) -> Command:
    return Command(name, f"ECHO /queen/ctl {_compact(obj)}")


def _parse_options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``key=value`` words; return the options and the words that are not of that shape."""
    opts: dict[str, str] = {}
    bad: list[str] = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq or not key or not value:
            bad.append(arg)
        else:
            opts[key] = value
    return opts, bad


_HEARTBEAT_WORDS = frozenset({"heartbeat", "worker", "worker-heartbeat"})
_GPU_WORDS = frozenset({"gpu", "worker-gpu"})
_HEARTBEAT_KEYS = ("ticks", "ttl_s", "ops", "count")
MAX_SPAWN_COUNT = 4096        # the compiler's ceiling for system.max_workers
_GPU_KEYS = ("gpu_id", "mem_mb", "streams", "ttl_s", "priority", "ops")


def _spawn(name: str, rest: str, args: list[str]) -> Translation:
    if not args:
        return policy_error("SPAWN", "missing-argument", "usage: spawn heartbeat|gpu <options>")
    kind = args[0].lower()
    opts, bad = _parse_options(args[1:])
    if bad:
        return policy_error("SPAWN", "invalid-payload", f"malformed spawn options: {' '.join(bad)}")
    if kind in _HEARTBEAT_WORDS:
        allowed, required = _HEARTBEAT_KEYS, ("ticks",)
    elif kind in _GPU_WORDS:
        allowed, required = _GPU_KEYS, ("gpu_id", "mem_mb", "streams", "ttl_s")
    else:
        return policy_error("SPAWN", "invalid-payload", f"unknown spawn role {args[0]}")
    unknown = [k for k in opts if k not in allowed]
    if unknown:
        return policy_error("SPAWN", "invalid-payload", f"unknown spawn options: {', '.join(unknown)}")
    missing = [k for k in required if k not in opts]
    if missing:
        return policy_error("SPAWN", "missing-argument", f"spawn {kind} requires {', '.join(missing)}")
    ints: dict[str, int] = {}
    for key, value in opts.items():
        if key == "gpu_id":
            continue
        if not value.isascii() or not value.isdigit():
            return policy_error("SPAWN", "invalid-payload", f"{key} must be a non-negative integer")
        ints[key] = int(value)
    count = ints.pop("count", 1)
    if not 1 <= count <= MAX_SPAWN_COUNT:
        return policy_error("SPAWN", "invalid-payload", f"count must be 1..{MAX_SPAWN_COUNT}")
    if kind in _HEARTBEAT_WORDS:
        obj: dict[str, object] = {"spawn": "heartbeat", "ticks": ints["ticks"]}
        budget = {k: ints[k] for k in ("ttl_s", "ops") if k in ints}
    else:
        lease: dict[str, object] = {"gpu_id": opts["gpu_id"]}
        for key in ("mem_mb", "streams", "ttl_s", "priority"):
            if key in ints:
                lease[key] = ints[key]
        obj = {"spawn": "gpu", "lease": lease}
        budget = {"ops": ints["ops"]} if "ops" in ints else {}
    if budget:
        obj["budget"] = budget
    command = _ctl("spawn", obj)
    return Command(command.name, command.wire, repeat=count) if count > 1 else command


def _workers(name: str, rest: str, args: list[str]) -> Translation:
    """``workers``: live workers grouped by shard (reads only; cohsh/workers_view.py)."""
    if args:
        return policy_error("WORKERS", "invalid-payload", "usage: workers")
    return Command("workers", "LS /", read_only=True)


def _gpu(name: str, rest: str, args: list[str]) -> Translation:
    """``gpu``: each GPU's info, lease and last job (reads only; cohsh/gpu_view.py)."""
    if args:
        return policy_error("GPU", "invalid-payload", "usage: gpu")
    return Command("gpu", "LS /gpu", read_only=True)


def _updates(name: str, rest: str, args: list[str]) -> Translation:
    """``updates [<root>]``: committed CAS epochs and their manifests (reads only; cohsh/cas_view.py)."""
    if len(args) > 1:
        return policy_error("UPDATES", "invalid-payload", "usage: updates [<cas root>]")
    root = args[0] if args else "/updates"
    problem = _check_path("UPDATES", root)
    if problem is not None:
        return problem
    return Command("updates", f"LS {root}", read_only=True)


def _kill(name: str, rest: str, args: list[str]) -> Translation:
    if len(args) != 1:
        return policy_error("KILL", "missing-argument", "usage: kill <worker-id>")
    return _ctl("kill", {"kill": args[0]})


def _bind(name: str, rest: str, args: list[str]) -> Translation:
    if len(args) != 2:
        return policy_error("BIND", "missing-argument", "usage: bind <from> <to>")
    for path in args:
        err = _check_path("BIND", path)
        if err is not None:
            return err
    return _ctl("bind", {"bind": {"from": args[0], "to": args[1]}})


def _mount(name: str, rest: str, args: list[str]) -> Translation:
    if len(args) != 2:
        return policy_error("MOUNT", "missing-argument", "usage: mount <service> <at>")
    err = _check_path("MOUNT", args[1])
    if err is not None:
        return err
    return _ctl("mount", {"mount": {"service": args[0], "at": args[1]}})


POOL_BENCH_USAGE = "usage: pool bench path=<p> ops=<n> [batch=<k>] [payload=<text>]"
MAX_BENCH_OPS = 10_000_000
MAX_BENCH_BATCH = 1024


def _pool_error(reason: str, message: str) -> LocalError:
    """A local refusal of ``pool``, in the command's own grammar (printed as is, SPEC §11.7)."""
    return LocalError(f"ERR POOL BENCH reason={reason} msg={message}", message, print_line=True)


def _pool(name: str, rest: str, args: list[str]) -> Translation:
    """``pool bench …``: executed by the shell through a session pool (cohsh/pool.py), not the console."""
    if not args or args[0].lower() != "bench":
        return _pool_error("policy", POOL_BENCH_USAGE)
    opts: dict[str, str] = {}
    for word in args[1:]:
        key, eq, value = word.partition("=")
        if not eq or not key or not value:
            return _pool_error("policy", f"malformed pool bench option {word} ({POOL_BENCH_USAGE})")
        if key not in ("path", "ops", "batch", "payload"):
            return _pool_error("policy", f"unknown pool bench option {key} ({POOL_BENCH_USAGE})")
        if key in opts:
            return _pool_error("policy", f"pool bench option {key} given twice")
        opts[key] = value
    missing = [key for key in ("path", "ops") if key not in opts]
    if missing:
        return _pool_error("policy", f"pool bench requires {' and '.join(missing)} ({POOL_BENCH_USAGE})")
    problem = path_problem(opts["path"])
    if problem is not None:
        return _pool_error("invalid-path", f"invalid path {opts['path']}: {problem}")
    numbers: dict[str, int] = {}
    for key, high in (("ops", MAX_BENCH_OPS), ("batch", MAX_BENCH_BATCH)):
        if key not in opts:
            continue
        value = opts[key]
        if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= high:
            return _pool_error("policy", f"{key} must be an integer 1..{high}, got {value}")
        numbers[key] = int(value)
    payload = opts.get("payload", "bench")
    if not payload.isprintable():
        return _pool_error("policy", "payload must be printable text")
    return Command("pool", None, pool=PoolBench(opts["path"], numbers["ops"], numbers.get("batch", 4), payload))


_HANDLERS = {
    "attach": _attach,
    "login": _attach,
    "detach": _no_args("quit"),
    "ping": _no_args("PING"),
    "help": _no_args(None),
    "quit": _no_args("quit"),
    "log": _no_args("LOG"),
    "tail": _read_path,
    "cat": _read_path,
    "consume": _consume,
    "ls": _one_path,
    "echo": _echo,
    "spawn": _spawn,
    "kill": _kill,
    "bind": _bind,
    "mount": _mount,
    "pool": _pool,
    "gpu": _gpu,
    "workers": _workers,
    "updates": _updates,
}
