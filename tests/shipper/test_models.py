"""LineMetadata reads as the dict {**shared.pairs, "line_no": line_no} wherever a record's metadata
is read as a mapping (reports, rejections, JSON pushes, the tests' own comparisons)."""

from __future__ import annotations

import operator

import pytest

from shipper.models import LineMetadata, SharedMetadata

SHARED = SharedMetadata({"object": "trades/a.jsonl", "generation": "17"})
AS_DICT = {"object": "trades/a.jsonl", "generation": "17", "line_no": "42"}


def test_line_metadata_reads_as_its_dict() -> None:
    metadata = LineMetadata(SHARED, "42")
    assert metadata == AS_DICT
    assert operator.eq(AS_DICT, metadata)  # dict == LineMetadata: the dict defers to the mapping
    assert metadata != {**AS_DICT, "line_no": "43"}
    assert list(metadata.items()) == list(AS_DICT.items())  # the order a dict of them would have
    assert (len(metadata), metadata["line_no"], metadata["object"]) == (3, "42", "trades/a.jsonl")
    assert metadata.get("nope") is None
    assert {**metadata, "parse_error": "x"} == {**AS_DICT, "parse_error": "x"}
    assert "generation" in metadata and "nope" not in metadata
    assert repr(metadata) == repr(AS_DICT)
    with pytest.raises(KeyError):
        metadata["nope"]


def test_shared_metadata_sizes_itself_and_leaves_line_no_to_the_line() -> None:
    assert (SHARED.names, SHARED.values_size) == (("object", "generation", "line_no"), 16)
    assert hash(SHARED) != hash(SharedMetadata(dict(SHARED.pairs)))  # a cache key by identity
    with pytest.raises(ValueError, match="line_no"):
        SharedMetadata({"object": "a", "line_no": "1"})
