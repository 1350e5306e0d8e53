"""The guest's pure-Python BLAKE3 against the PyPI ``blake3`` package and the SPEC §4.7 vector."""
from __future__ import annotations

import blake3 as reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nine_door import blake3


def test_spec_vector_worker_secret():
    assert blake3.hash(b"worker").hex() == \
        "88d82e8abd979fbb217f37f22fcbf9a603fa1b8f46cfd84697ccea6030fc8412"


def test_empty_input_official_vector():
    # From the BLAKE3 test vectors (input length 0).
    assert blake3.hash(b"").hex() == \
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


# Lengths around every block, chunk and tree boundary up to 4 chunks and a bit.
BOUNDARY_LENGTHS = sorted({0, 1, 2, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 2047, 2048,
                           2049, 3071, 3072, 3073, 4095, 4096, 4097, 5121, 8192, 8193})


@pytest.mark.parametrize("length", BOUNDARY_LENGTHS)
def test_boundary_lengths_match_reference(length):
    data = bytes(i % 251 for i in range(length))   # the official vectors' input pattern
    key = bytes(range(32))
    assert blake3.hash(data) == reference.blake3(data).digest()
    assert blake3.keyed_hash(key, data) == reference.blake3(data, key=key).digest()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2500))
def test_hash_matches_reference(data):
    assert blake3.hash(data) == reference.blake3(data).digest()


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=2500))
def test_keyed_hash_matches_reference(key, data):
    assert blake3.keyed_hash(key, data) == reference.blake3(data, key=key).digest()


def test_keyed_hash_differs_from_plain_hash():
    assert blake3.keyed_hash(bytes(32), b"x") != blake3.hash(b"x")


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33)])
def test_keyed_hash_rejects_wrong_key_length(key):
    with pytest.raises(ValueError):
        blake3.keyed_hash(key, b"payload")


def test_guest_module_does_not_import_the_pypi_package():
    import ast
    import pathlib
    source = pathlib.Path(blake3.__file__).read_text()
    imported = {alias.name for node in ast.walk(ast.parse(source))
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in getattr(node, "names", [])}
    assert "blake3" not in imported
