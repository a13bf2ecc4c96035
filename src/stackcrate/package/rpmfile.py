"""The rpm v4 file format, written: lead, signature header, main header, cpio payload (see rpm's
docs/manual/format_v4.md and tag_index.md). Only what a binary package of files needs; `rpm.py` says what goes in.

Every header holds an immutable region (what rpm checks the package's digests over; in the main header it also
refuses a tag of another type than its own): index entries in tag order, each value at the alignment of its type,
in the same order.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

# tag types (rpm's rpmTagType)
INT16, INT32, STRING, BIN, STRING_ARRAY, I18NSTRING = 3, 4, 6, 7, 8, 9
_ALIGN = {INT16: 2, INT32: 4}

# tags of the signature header
SIG_SHA256, SIG_SIZE, SIG_PAYLOADSIZE, SIG_RESERVEDSPACE = 273, 1000, 1007, 1008
# room left in the signature header for a signature added in place later (`rpmsign --addsign`): what rpmbuild leaves
RESERVED_SPACE = 4128
REGION_SIGNATURES, REGION_IMMUTABLE = 62, 63

Value = str | bytes | list[str] | list[int]
Entry = tuple[int, int, Value]   # tag, type, value

# dependency sense flags (rpmsenseFlags)
SENSE = {"<": 2, ">": 4, "=": 8, "==": 8, "<=": 10, ">=": 12}
RPMLIB = 1 << 24


def _encode(typ: int, value: Value) -> tuple[bytes, int]:
    """(bytes, count) of one value; ValueError for a number its type cannot hold (a size of 4 GiB or more: rpm's
    64-bit size tags are not written)."""
    if typ == STRING:
        return value.encode() + b"\0", 1
    if typ in (STRING_ARRAY, I18NSTRING):
        return b"".join(s.encode() + b"\0" for s in value), len(value)
    if typ == BIN:
        return bytes(value), len(value)
    fmt = {INT16: "H", INT32: "I"}[typ]
    try:
        return struct.pack(f">{len(value)}{fmt}", *value), len(value)
    except struct.error:
        raise ValueError(f"{max(value)} does not fit rpm's {16 if typ == INT16 else 32}-bit fields") from None


def header(entries: Iterable[Entry], region: int) -> bytes:
    """One header structure (magic, index, data) whose entries all lie in an immutable region."""
    entries = sorted(entries, key=lambda e: e[0])
    il = len(entries) + 1
    index, data = [], bytearray()
    for tag, typ, value in entries:
        raw, count = _encode(typ, value)
        data += b"\0" * (-len(data) % _ALIGN.get(typ, 1))
        index.append(struct.pack(">iiii", tag, typ, len(data), count))
        data += raw
    # the region: a first index entry pointing at a trailer, the last 16 bytes of the data, which counts back to
    # the start of the index (minus its length in bytes)
    region_entry = struct.pack(">iiii", region, BIN, len(data), 16)
    data += struct.pack(">iiii", region, BIN, -16 * il, 16)
    return (b"\x8e\xad\xe8\x01\0\0\0\0" + struct.pack(">II", il, len(data)) + region_entry + b"".join(index)
            + bytes(data))


def lead(name: str) -> bytes:
    """The 96-byte lead rpm still reads first: a binary package (type 0) for x86_64 (arch 1) on Linux (os 1),
    with a header-style signature (5)."""
    return struct.pack(">4sBBhh66shh16s", b"\xed\xab\xee\xdb", 3, 0, 0, 1, name.encode()[:65], 1, 5, b"")


def signature(main: bytes, payload_bytes: int, payload_size: int) -> bytes:
    """The signature header of a main header followed by payload_bytes of compressed payload (payload_size
    uncompressed), padded to 8 bytes.

    Its digest is the main header's SHA256, which covers the payload through the payload's own digest in it: what
    every rpm that reads zstd payloads (4.14 and later) verifies. The older MD5 of header and payload (and SHA1 of
    the header) are not written: rpm 4.14 made them obsolete, rpm 6 no longer checks them, and the MD5 meant reading
    the payload once more."""
    sig = header([
        (SIG_SHA256, STRING, hashlib.sha256(main).hexdigest()),
        (SIG_SIZE, INT32, [len(main) + payload_bytes]),
        (SIG_PAYLOADSIZE, INT32, [payload_size]),
        (SIG_RESERVEDSPACE, BIN, bytes(RESERVED_SPACE)),
    ], REGION_SIGNATURES)
    return sig + b"\0" * (-len(sig) % 8)


_NEWC = b"070701" + b"%08x" * 13


def cpio_entry(name: str, mode: int, mtime: int, ino: int, size: int = 0) -> bytes:
    """The head of one member of the payload: a "newc" cpio header (owner root) and the name, padded to 4 bytes;
    `size` bytes of data follow it, padded to 4 bytes as well (`pad`)."""
    raw = name.encode() + b"\0"
    # magic, then inode, mode, uid, gid, nlink, mtime, size, dev major/minor, rdev major/minor, name size, check
    head = _NEWC % (ino, mode, 0, 0, 1, mtime, size, 0, 0, 0, 0, len(raw), 0) + raw
    return head + b"\0" * (-len(head) % 4)


def pad(size: int) -> bytes:
    return b"\0" * (-size % 4)


CPIO_TRAILER = cpio_entry("TRAILER!!!", 0, 0, 0)
