"""Content digests and anonymous ids (vein_tracker.hashing), against known values."""

from __future__ import annotations

import re

from vein_tracker import export
from vein_tracker.hashing import ANONYMOUS_ID_HEX, anonymous_id, sha256_hex
from vein_tracker.storage import photostore


def test_sha256_hex_matches_the_published_test_vectors() -> None:
    # FIPS 180-2 appendix B.1 and the empty message.
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_anonymous_ids_are_random_hex_of_the_stated_length() -> None:
    ids = {anonymous_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(f"[0-9a-f]{{{ANONYMOUS_ID_HEX}}}", i) for i in ids)
    # Every hex digit turns up at every position: nothing fixed or sequential.
    for pos in range(ANONYMOUS_ID_HEX):
        assert len({i[pos] for i in ids}) == 16


def test_the_photo_store_and_the_export_use_these_helpers() -> None:
    assert photostore.sha256_hex is sha256_hex
    assert export.sha256_hex is sha256_hex
    assert export.new_anonymous_id is anonymous_id
