"""The fields a JSON object line's timestamp and level come from, read without building the rest.

A line of a GCS object is shipped as it is; only its timestamp fields (settings'
`timestamp_fields`) and level fields (records.LEVEL_FIELDS) are read from it. msgspec decodes
those into a small struct and skips every other value after checking its syntax, instead of
making a dict of all of them as orjson.loads does: `shipper once` runs 6.5 % fewer instructions
a line (53.2k -> 49.7k, bench/shipper_instructions.py). Duplicate keys: the last one wins, as
with orjson, Go and Loki's `| json` (pysimdjson, which takes the first, was not taken for that).

Where msgspec refuses a line, orjson.loads reads it again, so a line that is not JSON carries
orjson's error as before. One difference remains: a number beyond a double's range (`1e400`) in
a field the shipper does not read passes, where orjson refused the whole line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from shipper.records import LEVEL_FIELDS

UNSET: Any = msgspec.UNSET  # a field the line does not have


class JsonFields:
    def __init__(self, timestamp_fields: Sequence[str]) -> None:
        names = tuple(dict.fromkeys([*timestamp_fields, *LEVEL_FIELDS]))
        # attributes f0, f1, ... named in JSON as the fields are (any name, not only identifiers)
        self._attributes = tuple((f"f{position}", name) for position, name in enumerate(names))
        struct = msgspec.defstruct(
            "RecordFields",
            [(attribute, Any, UNSET) for attribute, _ in self._attributes],
            rename=dict(self._attributes),
            gc=False,  # decoded JSON holds no reference cycles
        )
        self.decode = msgspec.json.Decoder(struct).decode
        """The fields of a JSON object line; raises msgspec.MsgspecError for any other line, and
        RecursionError for one nested deeper than about the interpreter's recursion limit."""
        attribute_of = {name: attribute for attribute, name in self._attributes}
        self.first_timestamp = attribute_of[timestamp_fields[0]] if timestamp_fields else None
        self.first_level = attribute_of[LEVEL_FIELDS[0]]

    def as_dict(self, fields: Any) -> dict[str, Any]:
        """The fields the line has (null ones too), for the general timestamp and level helpers."""
        present = {}
        for attribute, name in self._attributes:
            value = getattr(fields, attribute)
            if value is not UNSET:
                present[name] = value
        return present
