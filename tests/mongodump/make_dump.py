#!/usr/bin/env python3
"""Writes what mongodump writes, from JSONL fixtures, with pymongo's `bson`.

An encoder independent of edn-migrate's (Rust `bson` crate), for tests/dump.rs:

    make_dump.py --fixtures DIR --out PATH --layout directory|archive [--gzip]
                 --indexes FILE --offsets FILE

- directory: PATH/<db>/<coll>.bson and <coll>.metadata.json (canonical
  Extended JSON, as mongodump 100.x writes it); with --gzip every file is
  gzipped and named .bson.gz / .metadata.json.gz, as `mongodump --gzip` does.
- archive: one file in the format of mongo-tools' common/archive/spec.md:
  magic 0x8199e26d, header, one metadata document per namespace, terminator,
  then namespace segments (interleaved across collections, a few documents
  each, as parallel dumps interleave them) and one EOF block per namespace
  carrying the CRC-64 (Go's ECMA table) of the namespace's document bytes.
  With --gzip the whole stream is gzipped, as `mongodump --archive --gzip`.

Both also hold what a full-server dump holds besides the application's data:
`admin.system.version` and a view, which an import must leave out.

--indexes names a JSON file {"db.coll": [{"name": ..., "key": [[field, dir], ...],
...options}]}; the `_id_` index is always written first. --offsets receives
the byte offset (uncompressed) of every document, and of every EOF block of
an archive, so the test can corrupt a file at a known place.
"""

import argparse
import gzip
import json
import os
import struct
import sys

import bson
from bson import json_util
from bson.codec_options import DatetimeConversion
from bson.int64 import Int64
from bson.son import SON

READ = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
    document_class=SON,
)
CANONICAL = json_util.CANONICAL_JSON_OPTIONS

MAGIC = struct.pack("<I", 0x8199E26D)
TERMINATOR = b"\xff\xff\xff\xff"
SEGMENT = 3  # documents per archive segment

# CRC-64 with Go's crc64.ECMA table: reflected polynomial, all-ones init and xor.
_POLY = 0xC96C5795D7870F42
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)
_MASK = 0xFFFFFFFFFFFFFFFF


def crc64(data, crc=0):
    crc ^= _MASK
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK


assert crc64(b"123456789") == 0x995DC9BBDF1939FA, "CRC-64/ECMA check value"


def read_fixtures(root):
    """{(db, coll): [encoded document bytes]} in file order."""
    out = {}
    for db in sorted(os.listdir(root)):
        folder = os.path.join(root, db)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".jsonl"):
                continue
            docs = []
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        docs.append(bson.encode(json_util.loads(line, json_options=READ)))
            out[(db, name[: -len(".jsonl")])] = docs
    return out


def extras():
    """What a full-server dump holds that is not the application's data."""
    version = bson.encode(SON([("_id", "featureCompatibilityVersion"), ("version", "7.0")]))
    return {("admin", "system.version"): [version]}


def metadata(coll, indexes, kind="collection", options=None):
    listed = [SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")])]
    for spec in indexes:
        index = SON([("v", 2), ("key", SON([(f, d) for f, d in spec["key"]])), ("name", spec["name"])])
        for option, value in spec.items():
            if option not in ("key", "name"):
                index[option] = value
        listed.append(index)
    doc = SON()
    if options is not None:
        doc["options"] = options
    doc["indexes"] = listed if kind == "collection" else []
    doc["uuid"] = "0123456789abcdef0123456789abcdef"
    doc["collectionName"] = coll
    doc["type"] = kind
    return json_util.dumps(doc, json_options=CANONICAL, separators=(",", ":"))


def view_metadata():
    options = SON([("viewOn", "users"), ("pipeline", [SON([("$project", SON([("user_id", 1)]))])])])
    return metadata("active_users", [], kind="view", options=options)


def offsets_of(docs, start=0):
    out, at = [], start
    for d in docs:
        out.append(at)
        at += len(d)
    return out


def write_file(path, data, compress):
    if compress:
        data = gzip.compress(data)
        path += ".gz"
    with open(path, "wb") as f:
        f.write(data)


def write_directory(out, data, indexes, compress):
    offsets = {}
    for (db, coll), docs in data.items():
        folder = os.path.join(out, db)
        os.makedirs(folder, exist_ok=True)
        write_file(os.path.join(folder, coll + ".bson"), b"".join(docs), compress)
        meta = metadata(coll, indexes.get(f"{db}.{coll}", []))
        write_file(os.path.join(folder, coll + ".metadata.json"), meta.encode(), compress)
        offsets[f"{db}/{coll}.bson"] = offsets_of(docs)
    # A view has metadata and no data.
    view_db = next(db for db, _ in data if db != "admin")
    write_file(os.path.join(out, view_db, "active_users.metadata.json"), view_metadata().encode(), compress)
    return offsets


def write_archive(out, data, indexes, compress):
    stream = bytearray(MAGIC)
    stream += bson.encode(
        SON(
            [
                ("concurrent_collections", 4),
                ("version", "0.1"),
                ("server_version", "7.0.14"),
                ("tool_version", "100.10.0"),
            ]
        )
    )
    view_db = next(db for db, _ in data if db != "admin")
    for (db, coll), docs in data.items():
        stream += bson.encode(
            SON(
                [
                    ("db", db),
                    ("collection", coll),
                    ("metadata", metadata(coll, indexes.get(f"{db}.{coll}", []))),
                    ("size", sum(len(d) for d in docs)),
                    ("type", "collection"),
                ]
            )
        )
    stream += bson.encode(
        SON([("db", view_db), ("collection", "active_users"), ("metadata", view_metadata()), ("size", 0), ("type", "view")])
    )
    stream += TERMINATOR

    doc_offsets = {f"{db}.{coll}": [] for db, coll in data}
    eof_offsets = {}
    pending = {key: list(docs) for key, docs in data.items()}
    crcs = {key: 0 for key in data}

    def header(db, coll, eof, crc):
        return bson.encode(SON([("db", db), ("collection", coll), ("EOF", eof), ("CRC", Int64(crc))]))

    # Round-robin segments of a few documents, as collections dumped in
    # parallel interleave; a namespace ends with its EOF block once drained.
    while pending:
        for key in list(pending):
            db, coll = key
            chunk, pending[key] = pending[key][:SEGMENT], pending[key][SEGMENT:]
            if chunk:
                stream += header(db, coll, False, 0)
                for d in chunk:
                    doc_offsets[f"{db}.{coll}"].append(len(stream))
                    stream += d
                    crcs[key] = crc64(d, crcs[key])
                stream += TERMINATOR
            if not pending[key]:
                signed = crcs[key] - (1 << 64) if crcs[key] >= 1 << 63 else crcs[key]
                eof_offsets[f"{db}.{coll}"] = len(stream)
                stream += header(db, coll, True, signed)
                stream += TERMINATOR
                del pending[key]
    with open(out, "wb") as f:
        f.write(gzip.compress(bytes(stream)) if compress else bytes(stream))
    return {"documents": doc_offsets, "eof": eof_offsets}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--layout", choices=["directory", "archive"], required=True)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--indexes", required=True)
    parser.add_argument("--offsets", required=True)
    args = parser.parse_args()

    with open(args.indexes, encoding="utf-8") as f:
        indexes = json.load(f)
    data = read_fixtures(args.fixtures)
    data.update(extras())
    if args.layout == "directory":
        offsets = write_directory(args.out, data, indexes, args.gzip)
    else:
        offsets = write_archive(args.out, data, indexes, args.gzip)
    with open(args.offsets, "w", encoding="utf-8") as f:
        json.dump(offsets, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
