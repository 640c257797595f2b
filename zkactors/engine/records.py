"""The log entry's record in the write-ahead log: its bytes, and their version.

A record is msgpack of ``[RECORD_VERSION, term, time_ms, txn]``; its index is
the WAL's own (zkactors.storage.wal frames and checksums each record). The
version comes first so a later format can change anything after it, and a node
meeting a record newer than it knows refuses to start, saying so, instead of
misreading it.

Version history:

* **0** (until 2026-11-30): ``[term, time_ms, txn]``, no version. Still read: a
  three-element record is taken as version 0, so data directories written
  before the version existed load as they are.
* **1**: ``[1, term, time_ms, txn]``.

The replication messages carry entries in their own shape
(:class:`~zkactors.core.messages.AppendEntries`); this is only the disk's.
"""

from __future__ import annotations

from zkactors.core.replog import Entry
from zkactors.protocol import pack, unpack

RECORD_VERSION = 1


class RecordError(ValueError):
    """A WAL record that is not a log entry this version can read."""


def encode_record(entry: Entry) -> bytes:
    return pack([RECORD_VERSION, entry.term, entry.time_ms, entry.txn])


def decode_record(index: int, payload: bytes) -> Entry:
    """The entry at ``index`` from its record; RecordError if it is not one."""
    try:
        fields = unpack(payload)
    except Exception as err:  # noqa: BLE001 - msgpack raises several kinds
        raise RecordError(f"record {index} does not decode ({type(err).__name__}: "
                          f"{err})") from None
    if not isinstance(fields, list):
        raise RecordError(f"record {index} is a {type(fields).__name__}, not a log entry")
    if len(fields) == 3:  # version 0
        term, time_ms, txn = fields
    elif fields and type(fields[0]) is int and fields[0] > RECORD_VERSION:
        raise RecordError(f"record {index} is in format {fields[0]}, newer than the "
                          f"{RECORD_VERSION} this zkactors reads: it was written by a "
                          f"newer release")
    elif len(fields) == 4 and fields[0] == RECORD_VERSION:
        _, term, time_ms, txn = fields
    else:
        raise RecordError(f"record {index} is not a log entry (a list of {len(fields)})")
    if type(term) is not int or type(time_ms) is not int or not isinstance(txn, list):
        raise RecordError(f"record {index} has a term, time or txn of the wrong type")
    return Entry(index, term, time_ms, txn)
