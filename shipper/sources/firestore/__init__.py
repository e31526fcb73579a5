"""Firestore source: each document of the configured collections becomes one JSON line.

Modules: source.py reads the collections, lanes.py holds the lane positions and late-arrival
windows, values.py turns documents into JSON lines.

Position: per collection, the documents are read in ascending order of a *timestamp field* and
then of the document id (`order_by(field).order_by(__name__)`), page by page (`page_size`) with
`start_after(last value, last id)`, so the first run streams a large collection and later runs
read only what sorts after the saved position.

Choices the Firestore query model forces on us (each one tested):

* The field is the one configured for the collection (`update_time` means the document's own
  update time), else the first of `timestamp`, `created_at` that some document has (decided
  once, when the collection first has documents, and kept in the cursor so the order never
  changes under a saved position). A collection
  with neither field is read in *update_time mode*: a streamed scan ordered by id that ships the
  documents whose `update_time` is newer than the previous complete scan (it reads the whole
  collection each run - Firestore cannot query by update_time - so prefer a field). Changing
  the configured field of a positioned collection is reported (`timestamp_field_changed`) and
  takes effect only once that collection's checkpoint entry is removed.
* Firestore orders mixed-type values by type first (null < bool < number < timestamp < string
  < ...) and a range filter only matches values of its own type. So each usable type -
  Firestore timestamps, numbers (epoch s/ms/us/ns) and strings (RFC 3339) - is its own *lane*
  with its own position: a new document whose field is a Timestamp is still found after the
  string lane has moved on. A lane value that does not parse as a time is skipped and counted
  (`shipper_records_skipped{reason="bad_timestamp"}`), once: a lane's position only ever moves
  onto a time, because such a value can sort after every time (`"None"` after RFC 3339 texts,
  infinity after numbers) and every document written later would sort below it, unread. Those
  after the last time read are read again by each pass, and not counted again (their digests
  are in the cursor's `counted_bad`, about 20 bytes each): a writer that keeps writing such
  values costs reads and cursor bytes until it is fixed. A value more than 10 minutes ahead of
  the clock (a writer's clock running fast, a wrong epoch unit) stops the lane before it for the
  pass, with a warning and a `future_timestamp` outcome: it ships once its time has come, and
  documents written meanwhile with earlier times still ship (in the string lane, texts of another
  layout that sort after it wait with it).
* Documents *missing* the field (or holding null, a bool, a map ...) are invisible to an
  ordered query. They cannot be shipped in field mode; instead, every run counts them with
  aggregation queries (all documents minus the lanes) and adds the growth since the previous
  run to `shipper_records_skipped{reason="no_timestamp_field"}`, with a warning that names the
  collection - never silently dropped. Configure the right field to ship them.
* Documents *updated* after being shipped are **not** re-shipped in field mode: the position
  follows the timestamp field, which records when the event happened, and a log entry is
  immutable (re-shipping would put a second, different line at the same timestamp in Loki).
  An update that moves the field past the saved position is read again, as a new entry. In
  update_time mode an update is by definition a new event and is shipped again.
* Late arrivals. The field is expected to grow with time ("now" at the writer), but a document
  can become visible after a pass has moved a lane past its value (a bot stamps `timestamp=now`
  and writes two seconds later). So each pass, before reading forward, a timestamp or number
  lane re-reads the documents whose field lies in the *late-arrival window*
  [saved position - `late_window_seconds`, saved position] (default 3600 s; 0 disables it) and
  ships those it has not shipped yet, with their own time from the field (so a resend after a
  crash is still dropped by Loki), counted as `shipper_records_adjusted{reason="late_arrival"}`
  and a `late_arrival` outcome. To know what it shipped, the lane's cursor keeps `shipped`:
  {8-byte blake2b hex digest of the document id: time shipped with, ns} for the documents
  shipped with a time inside the window ending at the lane's position; digests that fall out of
  the window as the position moves are dropped. The cursor is therefore bounded by the
  documents per window: one entry, about 40 bytes of JSON, per document of the window per lane
  (about 40 kB for 1,000), and every pass re-reads that many documents per lane (billed reads).
  The string lane sorts as text, not as time, so its window is a text bound: the position's
  moment minus the window, floored to the second and written in the position's own layout (its
  date-time separator and UTC offset, no fraction, no offset suffix; for epoch digits, as many
  digits). Every text of that layout whose moment lies in the window sorts at or after that
  bound - a longer text sorts after its own prefix, so fraction lengths do not matter - and the
  documents read between bound and position ship when their parsed time is inside the window and
  they were not shipped. A writer that mixes UTC offsets (or layouts) gets the window only for the
  texts of the position's offset, and as text order is not time order there, a document can
  come into a later window after its digest was forgotten: it is sent again, with the same
  timestamp and line, which Loki drops (and counted as late_arrival). A late document whose
  text does not parse is not seen. While the position is a text with no window (no time, or no
  text bound such as minute precision) there is no late read, and the digests are kept (by the
  position's time, or all of them when it is no time) for the next window.
  Limits: a document whose value is *more than* the window below the position when it becomes
  visible is still not found, nor counted - writers with skewed clocks should use a server
  timestamp (`SERVER_TIMESTAMP`); the window is read at the start of a pass, so a document that
  becomes visible during a pass that then moves the lane more than the window past it (a
  backlog) is not found either; a number lane is assumed to use one epoch unit
  (its window is computed in the unit of the saved position). The default hour is what Loki
  takes behind the newest entry of a stream (max_chunk_age / 2); a wider window needs Loki's
  max_chunk_age raised to match, or the oldest late documents are refused as too far behind
  (counted, and the pass is partial). A checkpoint written before
  the window existed, or a window made wider, has no digests for (part of) the window: the first
  pass after re-sends up to one window of documents - same timestamps and lines, which Loki
  drops - and counts them as late_arrival too.
* An empty or deleted collection (the same thing in Firestore) ships nothing and is reported as
  an `empty_collection` outcome; a permission or API error on one collection is a
  `collection_error:<reason>` outcome counted in `shipper_records_skipped` and the other
  collections still ship; its position is kept. Firestore being unreachable (unavailable,
  deadline exceeded) is a failed run: SourceError.
"""

from __future__ import annotations

from shipper.sources.firestore.lanes import LANES, Lane, LanePosition, LateWindow, digest_of, late_window
from shipper.sources.firestore.source import FirestoreSource
from shipper.sources.firestore.values import decode_cursor_value, encode_cursor_value, to_json_value

__all__ = [
    "LANES",
    "FirestoreSource",
    "Lane",
    "LanePosition",
    "LateWindow",
    "decode_cursor_value",
    "digest_of",
    "encode_cursor_value",
    "late_window",
    "to_json_value",
]
