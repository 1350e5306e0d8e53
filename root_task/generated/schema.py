# GENERATED – do not edit (coh-rtc)
# manifest sha256 9c4c2a58e3ba49f90ab6a6d08d6c6a840c690f3832a97027f0fe0956cb4c2e51
"""Telemetry frame and ring parameters compiled by coh-rtc from root_task.toml (SPEC §7.5).

Guest code imports this module; it imports nothing.
"""

# Record format of every worker ring: "text" (one line per record) or "cbor_v1" (Frame v1 items).
FRAME_SCHEMA = 'cbor_v1'

# CBOR Frame v1 keys (text strings).
FRAME_KEYS = ("seq", "ts", "kind", "payload", "meta")
FRAME_REQUIRED_KEYS = ("seq", "ts", "kind", "payload")
# Core deterministic encoding orders map keys bytewise by their encoded form.
FRAME_KEY_ORDER = ("ts", "seq", "kind", "meta", "payload")
FRAME_META_MAX_ENTRIES = 16

# Frame v1 kind codes.
KIND_TEXT = 0
KIND_HEARTBEAT = 1
KIND_GPU_JOB_STATUS = 2
KIND_RESERVED = (3, 127)
KIND_APPLICATION = (128, 255)

# Ring parameters.
RING_BYTES_PER_WORKER = 65536
MEMORY_BUDGET_BYTES = 67108864
MAX_WORKERS = 1024
