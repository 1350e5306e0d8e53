# GENERATED – do not edit (coh-rtc)
# manifest sha256 256bd3fdf2b681369074a67c5e236a6c395d0c3990e75882a5f3b2ae1d776363
"""Bootstrap constants compiled by coh-rtc from root_task.toml (SPEC §15.2).

This module runs inside the guest, so it imports nothing: every value is a literal. RESOLVED is the
resolved manifest (the same object as the manifest JSON; the console token only as its SHA-256), and
TICKET_SECRETS (the ticket MAC keys) is the only place secret text is emitted.
"""

MANIFEST_SCHEMA = '1.2'
MANIFEST_SHA256 = '256bd3fdf2b681369074a67c5e236a6c395d0c3990e75882a5f3b2ae1d776363'
IR_BASENAME = 'root_task.toml'

RESOLVED = {
    'cas': {
        'delta': {
            'enable': False,
        },
        'enable': False,
        'store': {
            'chunk_bytes': 4096,
            'hash': 'sha256',
            'root': '/updates',
        },
    },
    'client_policies': {
        'cohsh': {
            'pool': {
                'control': 2,
                'telemetry': 4,
            },
        },
        'retry': {
            'short_write': {
                'backoff_ms': 5,
                'max_retries': 3,
            },
        },
    },
    'console': {
        'auth_token_sha256': '057ba03d6c44104863dc7361fe4578965d1887360f90a0895882e58a6248fc86',
        'idle_timeout_s': 300,
        'limits': {
            'echo': 128,
            'id': 32,
            'json': 192,
            'line': 256,
            'path': 96,
            'role': 16,
            'ticket': 224,
        },
        'serial': True,
        'tcp': {
            'enable': True,
            'max_sessions': 4,
            'port': 31337,
        },
    },
    'gpu': {
        'backend': 'none',
    },
    'namespace': {
        'mounts': [],
    },
    'observability': {
        'proc_9p': [
            'outstanding',
            'sessions',
            'short_writes',
        ],
        'proc_ingest': {
            'fields': [
                'backpressure',
                'dropped',
                'p50_ms',
                'p95_ms',
                'queued',
            ],
            'watch_interval_ms': 1000,
        },
    },
    'roles': {
        'queen': {
            'enable': True,
        },
        'worker-gpu': {
            'default_budget': {
                'ops': 64,
            },
            'enable': True,
        },
        'worker-heartbeat': {
            'default_budget': {
                'ops': 10000,
                'ttl_s': 300,
            },
            'enable': True,
        },
    },
    'root_task': {
        'schema': '1.2',
    },
    'secure9p': {
        'batch_frames': True,
        'msize': 8192,
        'short_write_policy': {
            'backoff_ms': 5,
            'enable': True,
        },
        'tags_per_session': 32,
        'tcp_listener': {
            'enable': False,
            'port': 564,
        },
        'walk_depth': 8,
    },
    'sharding': {
        'enable': False,
        'legacy_worker_alias': True,
        'scheme': {
            'kind': 'hex_prefix',
            'width': 2,
        },
    },
    'system': {
        'arch': 'aarch64',
        'machine': 'virt',
        'max_workers': 1024,
        'tick_ms': 5,
    },
    'telemetry': {
        'frame_schema': 'cbor_v1',
        'memory_budget_bytes': 67108864,
        'ring_bytes_per_worker': 65536,
    },
    'tickets': [
        {
            'role': 'queen',
            'secret_sha256': '333c04dd151a2a6831c039cb9a651df29198be8a04e16ce861d4b6a34a11c954',
        },
        {
            'role': 'worker-gpu',
            'secret_sha256': '32da4e7cd92540a3ac8d2b008690e7678f435049e315cdb8e5c5dfc8e4711c31',
        },
        {
            'role': 'worker-heartbeat',
            'secret_sha256': '87eba76e7f3164534045ba922e7770fb58bbd14ad732bbf5ba6f11cc56989e6e',
        },
    ],
}

TICKET_SECRETS = {
    'queen': 'bootstrap',
    'worker-gpu': 'worker-gpu',
    'worker-heartbeat': 'worker',
}

# Secrets that hold a demo placeholder (SPEC §14.2); the root task warns once at boot when non-empty.
PLACEHOLDER_SECRETS = (
    'console.auth_token',
    'tickets[queen].secret',
    'tickets[worker-gpu].secret',
    'tickets[worker-heartbeat].secret',
)

# Shard labels in ascending order (SPEC §8); empty when sharding is disabled.
SHARD_LABELS = ()

# Enabled /proc files (SPEC §5.1, §12), sorted.
PROC_NODES = (
    '/proc/9p/outstanding',
    '/proc/9p/sessions',
    '/proc/9p/short_writes',
    '/proc/boot',
    '/proc/ingest/backpressure',
    '/proc/ingest/dropped',
    '/proc/ingest/p50_ms',
    '/proc/ingest/p95_ms',
    '/proc/ingest/queued',
    '/proc/ingest/watch',
)

# Ed25519 public key for CAS manifests (SPEC §13.2), or None when signing is not configured.
CAS_PUBKEY_HEX = None
