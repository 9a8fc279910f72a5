#!/usr/bin/env python3
"""A MongoDB-wire-compatible TEST SERVER. This is NOT MongoDB.

It exists so that edn-migrate's tests can drive the official MongoDB drivers
(the Rust `mongodb` crate, pymongo) over the real wire protocol on a machine
where no `mongod` can be installed. Query, update, aggregation and index
semantics come from `mongomock`; BSON encoding comes from pymongo's `bson`.
All data lives in memory and is lost when the process exits.

Usage:
    python3 server.py --port 0 [--exit-on-stdin-eof] [--verbose]
                      [--user NAME:PASSWORD]... [--tls-cert PEM --tls-key PEM [--tls-ca PEM]]
prints exactly one line `LISTENING <port>` on stdout once it accepts
connections, then serves until SIGTERM/SIGKILL (or stdin EOF with the flag).

Supported:
  * wire protocol: OP_MSG (body + document-sequence sections, checksumPresent,
    moreToCome) and legacy OP_QUERY on `<db>.$cmd` answered with OP_REPLY;
  * a standalone server (maxWireVersion 17, i.e. "MongoDB 6.0");
  * commands: hello/isMaster/ismaster, buildInfo, ping, serverStatus,
    getLastError, endSessions, listDatabases, dropDatabase, insert, find,
    getMore, killCursors, update, delete, findAndModify, aggregate, count,
    distinct, create, createIndexes, listIndexes, dropIndexes,
    listCollections, drop, renameCollection;
  * with --user: authentication by SASL PLAIN (saslStart) for those users
    only; every other command then needs an authenticated connection (code 13);
  * with --tls-cert/--tls-key: TLS on every connection; with --tls-ca, a
    client certificate signed by that CA is required;
  * wire compression (OP_COMPRESSED) with zlib, negotiated in hello as MongoDB
    does; serverStatus reports the bytes in `network.compression`.
  * serverStatus also counts the commands received since the server started,
    by name, in `metrics.commands.<name>.total` (and `.failed`), as MongoDB
    does (scripts/bench_migrate.sh --wire reads them).

Not supported: replica sets, sharding, transactions, change streams,
SCRAM/X.509 authentication, snappy and zstd compression, server-side JavaScript, collations, array
filters, explain, capped collections, validators, views, retryable-write
bookkeeping, tailable/awaitData cursors. Cursors are snapshots taken when the
find/aggregate runs. listDatabases shows only databases holding data (no
admin/config/local). What mongomock does not implement fails with an error
reply (mostly code 115 CommandNotSupported), not silently.

Stricter than mongomock, as strict as MongoDB: equality compares embedded
documents field by field in order and never equates booleans with numbers;
$type knows null, int/long, numeric codes and lists; arrays sort by their
smallest element; update paths that overlap are refused (code 40) and new
fields are added in MongoDB's path order; documents and statements over
16 MiB are refused (10334, 17419).

Fault injection (for tests): --drop-every K runs every K-th command and then
closes the connection without replying; --error-every K answers every K-th
command with --error-code (default 91) without running it. Handshake and
monitoring commands are never faulted. The test command
{ednFaults: 1, dropEvery: K, errorEvery: K, errorCode: C} changes the
schedule at run time and answers how many faults were injected and how many
commands ran since the last call; {ednFaults: 1, outageAfter: N, outageMs: T}
answers every command with errorCode for T ms from the N-th command on (an
outage longer than the tool's retries); {ednFaults: 1, only: "insert"} counts
and faults only commands of that name ("" for all again).

Fidelity: documents keep their field order and their BSON types (int32 vs
int64 vs double, UTC datetimes at millisecond precision, ObjectId, ...); the
few places where mongomock loses an int64 ($inc, $sum) are patched below.
Unique indexes are enforced by mongomock with a scan per written document, so
writes into a collection with a unique index cost O(collection size): fine for
test fixtures (1,000 docs in about a second), slow for tens of thousands.
"""

import argparse
import functools
import itertools
import numbers
import operator
import os
import re
import signal
import socketserver
import struct
import sys
import threading
import time
import ssl
import traceback
import zlib
from datetime import datetime, timezone

import bson
import mongomock
from bson import ObjectId
from bson.code import Code
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex
from bson.timestamp import Timestamp
from mongomock import aggregate as mm_aggregate
from mongomock import collection as mm_collection
from mongomock import filtering as mm_filtering
from pymongo.errors import DuplicateKeyError, OperationFailure

# --------------------------------------------------------------------------
# mongomock set-up and the small fixes this server relies on
# --------------------------------------------------------------------------

mongomock.SERVER_VERSION = "6.0.0"
CLIENT = mongomock.MongoClient()
LOCK = threading.RLock()  # one command at a time touches mongomock

DECODE_OPTS = CodecOptions(
    document_class=dict,  # dicts keep insertion order: field order survives
    tz_aware=True,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,  # out-of-range dates
)

_original_inc = mm_collection._updaters["$inc"]


def _inc_keeping_int64(doc, field, value):
    """mongomock's $inc does `old + value`, and Int64 + int is a plain int,
    which would go back out as int32. MongoDB keeps int64 in that case."""
    key = int(field) if isinstance(doc, list) else field
    try:
        old = doc[key]
    except (KeyError, IndexError, TypeError):
        old = None
    _original_inc(doc, field, value)
    try:
        new = doc[key]
    except (KeyError, IndexError, TypeError):
        return
    if type(new) is int and (isinstance(old, Int64) or isinstance(value, Int64)):
        doc[key] = Int64(new)


_original_group = mm_aggregate._PIPELINE_HANDLERS["$group"]


def _group_id_first(collection, database, options):
    """mongomock's $group appends `_id` last; MongoDB puts it first."""
    out = _original_group(collection, database, options)
    return [{"_id": d["_id"], **{k: v for k, v in d.items() if k != "_id"}} for d in out]


_original_sum = mm_aggregate._GROUPING_OPERATOR_MAP["$sum"]


def _sum_keeping_int64(values):
    """Same problem as $inc: a $sum over int64 values must stay int64."""
    values = list(values)
    total = _original_sum(values)
    if type(total) is int and any(isinstance(v, Int64) for v in values):
        return Int64(total)
    return total


mm_collection._updaters["$inc"] = _inc_keeping_int64
mm_aggregate._PIPELINE_HANDLERS["$group"] = _group_id_first
mm_aggregate._GROUPING_OPERATOR_MAP["$sum"] = _sum_keeping_int64

# --------------------------------------------------------------------------
# Where mongomock is laxer than MongoDB, this server is made as strict as
# MongoDB (never the other way round): the tool's guarded writes depend on
# exact equality, so a test must not pass here and fail against mongod.
# --------------------------------------------------------------------------


NOTHING = mm_filtering.NOTHING


def type_class(v):
    """MongoDB's canonical type order (bsontypes.h canonicalizeBSONType)."""
    if isinstance(v, MinKey):
        return -1
    if v is None:
        return 5
    if isinstance(v, bool):
        return 40
    if isinstance(v, (numbers.Number, Decimal128)):
        return 10
    if isinstance(v, str):
        return 15
    if isinstance(v, dict):
        return 20
    if isinstance(v, (list, tuple)):
        return 25
    if isinstance(v, bytes):
        return 30
    if isinstance(v, ObjectId):
        return 35
    if isinstance(v, datetime):
        return 45
    if isinstance(v, Timestamp):
        return 47
    if isinstance(v, (Regex, re.Pattern)):
        return 50
    if isinstance(v, Code):
        return 60
    if isinstance(v, MaxKey):
        return 127
    raise NotImplementedError("no BSON type order for %r" % type(v))


def as_number(v):
    return float(v.to_decimal()) if isinstance(v, Decimal128) else v


def strict_eq(a, b):
    """MongoDB equality: numbers by value across int/long/double, embedded
    documents field by field IN ORDER, booleans never equal to numbers.
    (mongomock uses Python's ==, which ignores field order and has
    True == 1.)"""
    if a is NOTHING or b is NOTHING:
        return a is b
    if type_class(a) != type_class(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            ka == kb and strict_eq(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(strict_eq(x, y) for x, y in zip(a, b))
    if type_class(a) == 10:
        x, y = as_number(a), as_number(b)
        return x == y or (x != x and y != y)  # NaN equals NaN in MongoDB
    return a == b


def eq_op(doc_val, search):
    if doc_val is NOTHING:
        return search is None
    if isinstance(doc_val, list) and any(strict_eq(e, search) for e in doc_val):
        return True
    return strict_eq(doc_val, search)


def in_op(doc_val, values):
    if not isinstance(values, (list, tuple)):
        raise OperationFailure("$in needs an array")
    for v in values:
        if isinstance(v, (Regex, re.Pattern)):
            if mm_filtering._regex(doc_val, v if isinstance(v, re.Pattern) else v.try_compile()):
                return True
        elif eq_op(doc_val, v):
            return True
    return False


TYPE_CODES = {1: "double", 2: "string", 3: "object", 4: "array", 5: "binData", 6: "undefined",
              7: "objectId", 8: "bool", 9: "date", 10: "null", 11: "regex", 12: "dbPointer",
              13: "javascript",
              14: "symbol", 15: "javascriptWithScope", 16: "int", 17: "timestamp", 18: "long",
              19: "decimal", -1: "minKey", 127: "maxKey"}


def aliases(v):
    """Every $type alias a single value answers to."""
    if v is None:
        return {"null"}
    if isinstance(v, bool):
        return {"bool"}
    if isinstance(v, Int64):
        return {"long", "number"}
    if isinstance(v, int):
        return {"int" if v.bit_length() < 32 else "long", "number"}
    if isinstance(v, float):
        return {"double", "number"}
    if isinstance(v, Decimal128):
        return {"decimal", "number"}
    if isinstance(v, str):
        return {"string"}
    if isinstance(v, dict):
        return {"object"}
    if isinstance(v, list):
        return {"array"}
    if isinstance(v, bytes):
        return {"binData"}
    if isinstance(v, ObjectId):
        return {"objectId"}
    if isinstance(v, datetime):
        return {"date"}
    if isinstance(v, Timestamp):
        return {"timestamp"}
    if isinstance(v, (Regex, re.Pattern)):
        return {"regex"}
    if isinstance(v, Code):
        return {"javascriptWithScope" if v.scope is not None else "javascript"}
    if isinstance(v, MinKey):
        return {"minKey"}
    if isinstance(v, MaxKey):
        return {"maxKey"}
    return set()


def type_op(doc_val, spec):
    wanted = set()
    for item in spec if isinstance(spec, list) else [spec]:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if int(item) not in TYPE_CODES:
                raise OperationFailure("invalid numerical type code: %r" % item)
            wanted.add(TYPE_CODES[int(item)])
        elif isinstance(item, str) and (item in TYPE_CODES.values() or item == "number"):
            wanted.add(item)
        else:
            raise OperationFailure("unknown type name alias: %r" % (item,))
    if doc_val is NOTHING:
        return False
    if aliases(doc_val) & wanted:
        return True
    return isinstance(doc_val, list) and any(aliases(e) & wanted for e in doc_val)


def rewrite_filter(f):
    """`{path: value}` becomes `{path: {$eq: value}}` (at every level), so every
    equality goes through the strict operator above."""
    if not isinstance(f, dict):
        return f
    out = {}
    for key, value in f.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            out[key] = [rewrite_filter(q) for q in value]
        elif key.startswith("$"):
            out[key] = value
        elif isinstance(value, dict) and value and all(k.startswith("$") for k in value):
            ops = dict(value)
            if isinstance(ops.get("$elemMatch"), dict):
                ops["$elemMatch"] = rewrite_filter(ops["$elemMatch"]) if not all(
                    k.startswith("$") for k in ops["$elemMatch"]) else ops["$elemMatch"]
            out[key] = ops
        elif isinstance(value, (Regex, re.Pattern)):
            out[key] = value
        else:
            out[key] = {"$eq": value}
    return out


_original_filter_applies = mm_filtering.filter_applies


def strict_filter_applies(search_filter, document):
    return _original_filter_applies(rewrite_filter(search_filter), document)


def sort_compare(a, b):
    if mm_filtering.bson_compare(operator.lt, a, b):
        return -1
    return 1 if mm_filtering.bson_compare(operator.gt, a, b) else 0


def resolve_sort_key(key, doc):
    """mongomock sorts an array by its first element; MongoDB (ascending) by
    its smallest, and an empty array before null."""
    value = mm_filtering.resolve_key(key, doc)
    if value is NOTHING:
        return 1, mm_filtering.BsonComparable(None)
    if isinstance(value, (list, tuple)):
        if not value:
            return 0, mm_filtering.BsonComparable(None)
        return 1, mm_filtering.BsonComparable(min(value, key=functools.cmp_to_key(sort_compare)))
    return 1, mm_filtering.BsonComparable(value)


_ops = mm_filtering._filterer_inst._operator_map
_ops["$eq"] = eq_op
_ops["$ne"] = lambda dv, sv: not eq_op(dv, sv)
_ops["$in"] = in_op
_ops["$nin"] = lambda dv, sv: not in_op(dv, sv)
_ops["$type"] = type_op
mm_filtering._get_compare_type = type_class
mm_filtering.filter_applies = strict_filter_applies
mm_collection.filter_applies = strict_filter_applies
mm_filtering.resolve_sort_key = resolve_sort_key

MAX_BSON = 16 * 1024 * 1024
MAX_STATEMENT = MAX_BSON + 16 * 1024  # MongoDB's internal headroom


def path_parts_order(path):
    """MongoDB (5.0+) applies update paths part by part, numbers by value."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split(".")]


def overlapping(a, b):
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith(short + ".")


def prepare_update(u):
    """Refuse conflicting paths (code 40) as MongoDB does, and order each
    operator's paths the way MongoDB applies them (new fields land in that
    order). Across operators mongomock still applies $set before $push etc.;
    the tool never creates a field with two operators in one update."""
    paths = []
    ordered = {}
    for op, spec in u.items():
        if op.startswith("$") and isinstance(spec, dict):
            paths.extend(spec)
            ordered[op] = dict(sorted(spec.items(), key=lambda kv: path_parts_order(kv[0])))
        else:
            ordered[op] = spec
    for i, a in enumerate(paths):
        for b in paths[i + 1:]:
            if overlapping(a, b):
                raise CommandError(40, "Updating the path '%s' would create a conflict at '%s'"
                                   % (a, b))
    return ordered

# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------

CODE_NAMES = {
    1: "InternalError", 2: "BadValue", 9: "FailedToParse", 14: "TypeMismatch",
    20: "IllegalOperation", 26: "NamespaceNotFound", 27: "IndexNotFound",
    40: "ConflictingUpdateOperators", 43: "CursorNotFound", 48: "NamespaceExists",
    59: "CommandNotFound", 91: "ShutdownInProgress", 10334: "BSONObjectTooLarge",
    17419: "Location17419",
    66: "ImmutableField", 72: "InvalidOptions", 85: "IndexOptionsConflict",
    86: "IndexKeySpecsConflict", 115: "CommandNotSupported", 11000: "DuplicateKey",
    13: "Unauthorized", 18: "AuthenticationFailed", 334: "MechanismUnavailable",
}
# mongomock raises some errors with its own codes (or none); map them.
MONGOMOCK_CODES = {10026: 26, 10027: 48, None: 2}


class CommandError(Exception):
    def __init__(self, code, errmsg):
        super().__init__(errmsg)
        self.code, self.errmsg = code, errmsg


def error_doc(code, errmsg):
    return {"ok": 0.0, "errmsg": errmsg, "code": code,
            "codeName": CODE_NAMES.get(code, "Location%d" % code)}


def as_error(exc, ns):
    """(code, errmsg) for an exception raised while running a command."""
    if isinstance(exc, CommandError):
        return exc.code, exc.errmsg
    if isinstance(exc, DuplicateKeyError):  # mongomock's message has no detail
        return 11000, "E11000 duplicate key error collection: %s" % ns
    if isinstance(exc, OperationFailure):
        return MONGOMOCK_CODES.get(exc.code, exc.code), str(exc)
    if isinstance(exc, NotImplementedError):
        return 115, "not supported by the wire test server: %s" % exc
    if isinstance(exc, (ValueError, TypeError, KeyError)):
        return 2, "%s: %s" % (type(exc).__name__, exc)
    raise exc


# --------------------------------------------------------------------------
# helpers: collections, cursors
# --------------------------------------------------------------------------

CURSORS = {}  # id -> {"ns": str, "docs": list, "pos": int}
CURSOR_IDS = itertools.count(1_000_001)
DEFAULT_FIRST_BATCH = 101
MAX_BATCH_BYTES = 15 * 1024 * 1024
STARTED = time.time()


def exists(db, name):
    return name in CLIENT[db].list_collection_names()


def coll_of(db, cmd, key):
    name = cmd[key]
    if not isinstance(name, str) or not name:
        raise CommandError(2, "collection name must be a non-empty string")
    return CLIENT[db][name], "%s.%s" % (db, name)


def to_sort(spec):
    if not spec:
        return None
    out = []
    for key, direction in spec.items():
        if isinstance(direction, dict):
            raise CommandError(115, "sort by $meta is not supported")
        out.append((key, 1 if direction >= 0 else -1))
    return out


def take_batch(cur, batch_size):
    """Next batch of cursor `cur`: at most batch_size docs (0/None: no count
    limit) and at most MAX_BATCH_BYTES, but always at least one doc."""
    docs, pos, size, batch = cur["docs"], cur["pos"], 0, []
    while pos < len(docs) and (not batch_size or len(batch) < batch_size):
        size += len(bson.encode(docs[pos]))
        if batch and size > MAX_BATCH_BYTES:
            break
        batch.append(docs[pos])
        pos += 1
    cur["pos"] = pos
    return batch


def cursor_reply(ns, docs, batch_size=None, single_batch=False):
    cur = {"ns": ns, "docs": docs, "pos": 0}
    if batch_size is None:
        batch_size = DEFAULT_FIRST_BATCH
    batch = take_batch(cur, batch_size) if batch_size else []
    cursor_id = 0
    if cur["pos"] < len(docs) and not single_batch:
        cursor_id = next(CURSOR_IDS)
        CURSORS[cursor_id] = cur
    return {"cursor": {"firstBatch": batch, "id": Int64(cursor_id), "ns": ns}, "ok": 1.0}


def apply_update(coll, q, u, upsert=False, multi=False):
    """One update statement through mongomock; returns its UpdateResult."""
    if isinstance(u, list) or (u and next(iter(u)).startswith("$")):
        if isinstance(u, dict):
            u = prepare_update(u)
        if multi:
            return coll.update_many(q, u, upsert=upsert)
        before = coll.find_one(q)
        result = coll.update_one(q, u, upsert=upsert)
        if before is not None:
            after = coll.find_one({"_id": before["_id"]})
            if after is not None and len(bson.encode(after)) > MAX_BSON:
                coll.replace_one({"_id": before["_id"]}, before)
                raise CommandError(17419, "Resulting document after update is larger than %d"
                                   % MAX_BSON)
        return result
    if multi:
        raise CommandError(9, "multi update is not supported for replacement-style update")
    if "_id" in u:
        # mongomock changes the stored _id before it notices the error
        current = coll.find_one(q, {"_id": 1})
        if current is not None and current["_id"] != u["_id"]:
            raise CommandError(66, "Performing an update on the path '_id' would "
                                   "modify the immutable field '_id'")
    if len(bson.encode(u)) > MAX_BSON:
        raise CommandError(17419, "Resulting document after update is larger than %d" % MAX_BSON)
    return coll.replace_one(q, u, upsert=upsert)


def put_id_first(coll, _id):
    """mongomock upserts append `_id` after the query fields; MongoDB puts it first."""
    doc = coll.find_one({"_id": _id})
    if doc is not None and next(iter(doc)) != "_id":
        coll.replace_one({"_id": _id}, {"_id": _id, **{k: v for k, v in doc.items() if k != "_id"}})


def write_error(index, exc, ns, coll=None, doc=None):
    code, errmsg = as_error(exc, ns)
    if isinstance(exc, DuplicateKeyError) and coll is not None:
        hit = violated_index(coll, doc)
        if hit is not None:
            errmsg = "%s index: %s dup key: { %s }" % (errmsg, hit[0], ", ".join(
                "%s: %r" % kv for kv in hit[1].items()))
    return {"index": index, "code": code, "errmsg": errmsg}


def path_value(doc, path):
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def violated_index(coll, doc):
    """(name, key) of the unique index `doc` collides on: mongomock does not say,
    and MongoDB names it in the message (`index: user_id_1 dup key: {...}`)."""
    if not isinstance(doc, dict):
        return None
    for name, info in coll.index_information().items():
        if name != "_id_" and not info.get("unique"):
            continue
        key = {k: path_value(doc, k) for k, _ in info["key"]}
        other = coll.find_one(key)
        if other is not None and (name == "_id_" or other.get("_id") != doc.get("_id")):
            return name, key
    return None


def index_docs(coll):
    out = []
    for name, info in coll.index_information().items():
        doc = {"v": info.get("v", 2), "key": dict(info["key"]), "name": name}
        doc.update({k: v for k, v in info.items() if k not in ("v", "key")})
        out.append(doc)
    return out


# --------------------------------------------------------------------------
# command handlers: handler(db, cmd, conn) -> reply document
# --------------------------------------------------------------------------

def cmd_hello(db, cmd, conn):
    reply = {
        "helloOk": True, "ismaster": True, "isWritablePrimary": True,
        "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000, "localTime": datetime.now(timezone.utc),
        "logicalSessionTimeoutMinutes": 30, "connectionId": conn["id"],
        "minWireVersion": 0, "maxWireVersion": 17, "readOnly": False, "ok": 1.0,
    }
    if "compression" in cmd:  # the first of the client's list we also speak
        reply["compression"] = [c for c in cmd["compression"] if c in COMPRESSORS]
    return reply


def cmd_sasl_start(db, cmd, conn):
    """SASL PLAIN in one step: payload is `authzid NUL user NUL password`."""
    if cmd.get("mechanism") != "PLAIN":
        return error_doc(334, "mechanism %s is not supported by the wire test server"
                         % cmd.get("mechanism"))
    try:
        _, user, password = bytes(cmd.get("payload", b"")).split(b"\x00")
        user, password = user.decode("utf-8"), password.decode("utf-8")
    except ValueError:
        return error_doc(18, "Authentication failed.")
    if not USERS or USERS.get(user) != password:
        return error_doc(18, "Authentication failed.")
    conn["user"] = user
    return {"conversationId": 1, "done": True, "payload": b"", "ok": 1.0}


def cmd_build_info(db, cmd, conn):
    return {"version": "6.0.0-wire-test-server", "versionArray": [6, 0, 0, 0],
            "gitVersion": "wire-test-server", "bits": 64, "debug": False,
            "maxBsonObjectSize": 16 * 1024 * 1024, "storageEngines": ["mongomock"],
            "ok": 1.0}


def cmd_ok(db, cmd, conn):
    return {"ok": 1.0}


def cmd_get_last_error(db, cmd, conn):
    return {"err": None, "n": 0, "connectionId": conn["id"], "ok": 1.0}


def cmd_server_status(db, cmd, conn):
    up = time.time() - STARTED
    return {"host": "127.0.0.1", "version": "6.0.0-wire-test-server", "process": "mongod",
            "pid": Int64(os.getpid()), "uptime": float(int(up)), "uptimeMillis": Int64(int(up * 1000)),
            "localTime": datetime.now(timezone.utc),
            "connections": {"current": len(CONNECTIONS), "available": 1000},
            "network": {"compression": COMPRESSION_STATS},
            "metrics": {"commands": command_metrics()}, "ok": 1.0}


# Commands received, by name, as MongoDB's serverStatus reports them in
# metrics.commands.<name>.total / .failed: the benchmark counts what a run
# sends per 1,000 legacy documents.
COMMAND_COUNTS = {}
COMMAND_LOCK = threading.Lock()


def count_command(name, reply):
    failed = isinstance(reply, dict) and reply.get("ok") != 1.0
    with COMMAND_LOCK:
        counts = COMMAND_COUNTS.setdefault(name, [0, 0])
        counts[0] += 1
        counts[1] += int(failed)


def command_metrics():
    with COMMAND_LOCK:
        return {name: {"total": Int64(t), "failed": Int64(f)}
                for name, (t, f) in sorted(COMMAND_COUNTS.items())}


def cmd_list_databases(db, cmd, conn):
    docs = [{"name": n, "sizeOnDisk": 4096.0, "empty": False} for n in sorted(CLIENT.list_database_names())]
    if cmd.get("filter"):
        docs = [d for d in docs if mm_filtering.filter_applies(cmd["filter"], d)]
    if cmd.get("nameOnly"):
        return {"databases": [{"name": d["name"]} for d in docs], "ok": 1.0}
    return {"databases": docs, "totalSize": 4096.0 * len(docs), "totalSizeMb": Int64(0), "ok": 1.0}


def cmd_drop_database(db, cmd, conn):
    CLIENT.drop_database(db)
    return {"dropped": db, "ok": 1.0}


def cmd_insert(db, cmd, conn):
    coll, ns = coll_of(db, cmd, "insert")
    n, errors = 0, []
    for i, doc in enumerate(cmd.get("documents", [])):
        if "_id" not in doc:
            doc = {"_id": ObjectId(), **doc}  # MongoDB puts a generated _id first
        try:
            if len(bson.encode(doc)) > MAX_BSON:
                raise CommandError(10334, "object to insert too large. size in bytes: %d, max size: %d"
                                   % (len(bson.encode(doc)), MAX_BSON))
            coll.insert_one(doc)
            n += 1
        except Exception as exc:  # noqa: BLE001 - becomes a writeError
            errors.append(write_error(i, exc, ns, coll, doc))
            if cmd.get("ordered", True):
                break
    reply = {"n": n, "ok": 1.0}
    if errors:
        reply["writeErrors"] = errors
    return reply


def cmd_find(db, cmd, conn):
    coll, ns = coll_of(db, cmd, "find")
    limit = int(cmd.get("limit", 0))
    docs = list(coll.find(cmd.get("filter") or {}, cmd.get("projection") or None,
                          skip=int(cmd.get("skip", 0)), limit=abs(limit),
                          sort=to_sort(cmd.get("sort"))))
    return cursor_reply(ns, docs, cmd.get("batchSize"), cmd.get("singleBatch", False) or limit < 0)


def cmd_get_more(db, cmd, conn):
    cursor_id = int(cmd["getMore"])
    cur = CURSORS.get(cursor_id)
    if cur is None:
        raise CommandError(43, "cursor id %d not found" % cursor_id)
    batch = take_batch(cur, cmd.get("batchSize"))
    if cur["pos"] >= len(cur["docs"]):
        del CURSORS[cursor_id]
        cursor_id = 0
    return {"cursor": {"nextBatch": batch, "id": Int64(cursor_id), "ns": cur["ns"]}, "ok": 1.0}


def cmd_kill_cursors(db, cmd, conn):
    killed, not_found = [], []
    for cursor_id in cmd.get("cursors", []):
        (killed if CURSORS.pop(int(cursor_id), None) else not_found).append(Int64(cursor_id))
    return {"cursorsKilled": killed, "cursorsNotFound": not_found,
            "cursorsAlive": [], "cursorsUnknown": [], "ok": 1.0}


def cmd_update(db, cmd, conn):
    coll, ns = coll_of(db, cmd, "update")
    n = n_modified = 0
    upserted, errors = [], []
    for i, st in enumerate(cmd.get("updates", [])):
        try:
            if st.get("arrayFilters"):
                raise NotImplementedError("arrayFilters")
            res = apply_update(coll, st.get("q") or {}, st["u"], bool(st.get("upsert")), bool(st.get("multi")))
            if res.upserted_id is not None:
                put_id_first(coll, res.upserted_id)
                n += 1
                upserted.append({"index": i, "_id": res.upserted_id})
            else:
                n += res.matched_count
                n_modified += res.modified_count
        except Exception as exc:  # noqa: BLE001 - becomes a writeError
            u = st.get("u")
            replacement = u if isinstance(u, dict) and not any(k.startswith("$") for k in u) else None
            if replacement is not None and "_id" not in replacement:
                replacement = {"_id": (st.get("q") or {}).get("_id"), **replacement}
            errors.append(write_error(i, exc, ns, coll, replacement))
            if cmd.get("ordered", True):
                break
    reply = {"n": n, "nModified": n_modified, "ok": 1.0}
    if upserted:
        reply["upserted"] = upserted
    if errors:
        reply["writeErrors"] = errors
    return reply


def cmd_delete(db, cmd, conn):
    coll, ns = coll_of(db, cmd, "delete")
    n, errors = 0, []
    for i, st in enumerate(cmd.get("deletes", [])):
        try:
            q = st.get("q") or {}
            res = coll.delete_one(q) if int(st.get("limit", 0)) == 1 else coll.delete_many(q)
            n += res.deleted_count
        except Exception as exc:  # noqa: BLE001 - becomes a writeError
            errors.append(write_error(i, exc, ns))
            if cmd.get("ordered", True):
                break
    reply = {"n": n, "ok": 1.0}
    if errors:
        reply["writeErrors"] = errors
    return reply


def cmd_find_and_modify(db, cmd, conn):
    coll, _ = coll_of(db, cmd, "findAndModify")
    q, fields = cmd.get("query") or {}, cmd.get("fields") or None
    remove, update, new = cmd.get("remove", False), cmd.get("update"), cmd.get("new", False)
    if remove == bool(update is not None):
        raise CommandError(9, "Either an update or remove=true must be specified")
    if cmd.get("arrayFilters"):
        raise NotImplementedError("arrayFilters")
    found = next(iter(coll.find(q, {"_id": 1}, sort=to_sort(cmd.get("sort")), limit=1)), None)
    if found is None:
        if remove or not cmd.get("upsert"):
            return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None, "ok": 1.0}
        _id = apply_update(coll, q, update, upsert=True).upserted_id
        put_id_first(coll, _id)
        value = coll.find_one({"_id": _id}, fields) if new else None
        return {"lastErrorObject": {"n": 1, "updatedExisting": False, "upserted": _id},
                "value": value, "ok": 1.0}
    _id = found["_id"]
    before = coll.find_one({"_id": _id}, fields)
    if remove:
        coll.delete_one({"_id": _id})
        return {"lastErrorObject": {"n": 1}, "value": before, "ok": 1.0}
    apply_update(coll, {"_id": _id}, update)
    value = coll.find_one({"_id": _id}, fields) if new else before
    return {"lastErrorObject": {"n": 1, "updatedExisting": True}, "value": value, "ok": 1.0}


def cmd_aggregate(db, cmd, conn):
    if not isinstance(cmd["aggregate"], str):
        raise CommandError(115, "database-level aggregate is not supported")
    if cmd.get("explain"):
        raise CommandError(115, "explain is not supported")
    coll, ns = coll_of(db, cmd, "aggregate")
    docs = list(coll.aggregate(cmd.get("pipeline", [])))  # allowDiskUse: ignored
    return cursor_reply(ns, docs, (cmd.get("cursor") or {}).get("batchSize"))


def cmd_count(db, cmd, conn):
    coll, _ = coll_of(db, cmd, "count")
    docs = coll.find(cmd.get("query") or {}, {"_id": 1},
                     skip=int(cmd.get("skip", 0)), limit=abs(int(cmd.get("limit", 0))))
    return {"n": len(list(docs)), "ok": 1.0}


def cmd_distinct(db, cmd, conn):
    coll, _ = coll_of(db, cmd, "distinct")
    return {"values": coll.distinct(cmd["key"], cmd.get("query") or None), "ok": 1.0}


def cmd_create(db, cmd, conn):
    _, ns = coll_of(db, cmd, "create")
    if exists(db, cmd["create"]):
        raise CommandError(48, "Collection %s already exists." % ns)
    CLIENT[db].create_collection(cmd["create"])  # options (capped, validator...) ignored
    return {"ok": 1.0}


def cmd_create_indexes(db, cmd, conn):
    coll, ns = coll_of(db, cmd, "createIndexes")
    created = not exists(db, coll.name)
    if created:
        CLIENT[db].create_collection(coll.name)
    before = len(coll.index_information())
    for spec in cmd.get("indexes", []):
        keys = list(spec["key"].items())
        name = spec.get("name") or "_".join("%s_%s" % kv for kv in keys)
        current = coll.index_information()
        if name in current:
            if list(current[name]["key"]) != keys:
                raise CommandError(86, "An existing index has the same name as the requested "
                                       "index but different keys: %s" % name)
            continue
        same_keys = [n for n, i in current.items() if list(i["key"]) == keys]
        if same_keys:
            raise CommandError(85, "Index already exists with a different name: %s" % same_keys[0])
        opts = {k: spec[k] for k in ("unique", "sparse", "expireAfterSeconds",
                                     "partialFilterExpression") if k in spec}
        try:
            coll.create_index(keys, name=name, **opts)
        except DuplicateKeyError:
            raise CommandError(11000, "Index build failed: E11000 duplicate key error "
                                      "collection: %s index: %s" % (ns, name)) from None
    return {"createdCollectionAutomatically": created, "numIndexesBefore": before,
            "numIndexesAfter": len(coll.index_information()), "ok": 1.0}


def cmd_list_indexes(db, cmd, conn):
    coll, ns = coll_of(db, cmd, "listIndexes")
    if not exists(db, coll.name):
        raise CommandError(26, "ns does not exist: %s" % ns)
    return cursor_reply(ns, index_docs(coll), (cmd.get("cursor") or {}).get("batchSize"))


def cmd_drop_indexes(db, cmd, conn):
    coll, ns = coll_of(db, cmd, "dropIndexes")
    if not exists(db, coll.name):
        raise CommandError(26, "ns not found %s" % ns)
    current = coll.index_information()
    which = cmd.get("index")
    if which == "*":
        coll.drop_indexes()
        return {"nIndexesWas": len(current), "ok": 1.0}
    if isinstance(which, dict):
        names = [n for n, i in current.items() if list(i["key"]) == list(which.items())]
        if not names:
            raise CommandError(27, "can't find index with key: %s" % which)
    else:
        names = which if isinstance(which, list) else [which]
    for name in names:
        if name == "_id_":
            raise CommandError(72, "cannot drop _id index")
        if name not in current:
            raise CommandError(27, "index not found with name [%s]" % name)
    for name in names:
        coll.drop_index(name)
    return {"nIndexesWas": len(current), "ok": 1.0}


def cmd_list_collections(db, cmd, conn):
    docs = []
    for name in sorted(CLIENT[db].list_collection_names()):
        docs.append({"name": name, "type": "collection", "options": {},
                     "info": {"readOnly": False},
                     "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}})
    if cmd.get("filter"):
        docs = [d for d in docs if mm_filtering.filter_applies(cmd["filter"], d)]
    if cmd.get("nameOnly"):
        docs = [{"name": d["name"], "type": d["type"]} for d in docs]
    return cursor_reply("%s.$cmd.listCollections" % db, docs,
                        (cmd.get("cursor") or {}).get("batchSize"))


def cmd_drop(db, cmd, conn):
    coll, ns = coll_of(db, cmd, "drop")
    if not exists(db, coll.name):
        raise CommandError(26, "ns not found")  # what mongod 6.0 answers
    n_indexes = len(coll.index_information())
    coll.drop()
    return {"nIndexesWas": n_indexes, "ns": ns, "ok": 1.0}


def cmd_rename_collection(db, cmd, conn):
    source, target = cmd["renameCollection"], cmd.get("to")
    if not (isinstance(source, str) and isinstance(target, str) and "." in source and "." in target):
        raise CommandError(2, "renameCollection needs full namespaces: from 'db.a' to 'db.b'")
    (src_db, src), (dst_db, dst) = source.split(".", 1), target.split(".", 1)
    if source == target:
        raise CommandError(20, "Can't rename a collection to itself")
    if not exists(src_db, src):
        raise CommandError(26, "Source collection %s does not exist" % source)
    if exists(dst_db, dst):
        if not cmd.get("dropTarget"):
            raise CommandError(48, "target namespace exists")
        CLIENT[dst_db][dst].drop()
    if src_db == dst_db:
        CLIENT[src_db][src].rename(dst)
    else:  # copy documents and indexes to the other database
        old, new = CLIENT[src_db][src], CLIENT[dst_db][dst]
        CLIENT[dst_db].create_collection(dst)
        for doc in old.find():
            new.insert_one(doc)
        for name, info in old.index_information().items():
            if name != "_id_":
                new.create_index(info["key"], name=name, **{k: v for k, v in info.items()
                                                            if k not in ("v", "key", "ns")})
        old.drop()
    return {"ok": 1.0}


COMMANDS = {
    "hello": cmd_hello, "isMaster": cmd_hello, "ismaster": cmd_hello,
    "buildInfo": cmd_build_info, "buildinfo": cmd_build_info,
    "ping": cmd_ok, "endSessions": cmd_ok, "getLastError": cmd_get_last_error,
    "serverStatus": cmd_server_status,
    "listDatabases": cmd_list_databases, "dropDatabase": cmd_drop_database,
    "insert": cmd_insert, "find": cmd_find, "getMore": cmd_get_more,
    "killCursors": cmd_kill_cursors, "update": cmd_update, "delete": cmd_delete,
    "findAndModify": cmd_find_and_modify, "findandmodify": cmd_find_and_modify,
    "aggregate": cmd_aggregate, "count": cmd_count, "distinct": cmd_distinct,
    "create": cmd_create, "createIndexes": cmd_create_indexes,
    "listIndexes": cmd_list_indexes, "dropIndexes": cmd_drop_indexes,
    "deleteIndexes": cmd_drop_indexes, "listCollections": cmd_list_collections,
    "drop": cmd_drop, "renameCollection": cmd_rename_collection,
    "saslStart": cmd_sasl_start,
}


LOCK_FREE = {cmd_hello, cmd_build_info, cmd_ok, cmd_get_last_error, cmd_server_status}
# What MongoDB answers before authentication (the rest needs it under --user).
NO_AUTH = {cmd_hello, cmd_build_info, cmd_ok, cmd_sasl_start}
USERS = {}
COMPRESSORS = ["zlib"]
COMPRESSOR_IDS = {0: "noop", 2: "zlib"}
STATS_LOCK = threading.Lock()
COMPRESSION_STATS = {"zlib": {"compressor": {"bytesIn": Int64(0), "bytesOut": Int64(0)},
                              "decompressor": {"bytesIn": Int64(0), "bytesOut": Int64(0)}}}

# --------------------------------------------------------------------------
# fault injection: what a flaky network or a failing-over server does
# --------------------------------------------------------------------------

# Handshake and monitoring commands are never faulted: the driver's monitor
# must see the server come back.
NOT_FAULTED = {"hello", "isMaster", "ismaster", "ping", "buildInfo", "buildinfo",
               "endSessions", "getLastError", "serverStatus", "saslStart", "saslContinue",
               "ednFaults"}
FAULTS = {"only": "", "drop_every": 0, "error_every": 0, "error_code": 91, "count": 0, "injected": 0,
          "outage_after": 0, "outage_ms": 0, "outage_until": 0.0}
FAULT_LOCK = threading.Lock()


def fault_for(name):
    """'drop', 'error' or None for the next command of this name."""
    if name in NOT_FAULTED:
        return None
    with FAULT_LOCK:
        if FAULTS["only"] and name != FAULTS["only"]:
            return None
        FAULTS["count"] += 1
        n = FAULTS["count"]
        if FAULTS["outage_after"] and n == FAULTS["outage_after"]:
            FAULTS["outage_until"] = time.monotonic() + FAULTS["outage_ms"] / 1000.0
        if time.monotonic() < FAULTS["outage_until"]:
            FAULTS["injected"] += 1
            return "error"
        if FAULTS["error_every"] and n % FAULTS["error_every"] == 0:
            FAULTS["injected"] += 1
            return "error"
        if FAULTS["drop_every"] and n % FAULTS["drop_every"] == 0:
            FAULTS["injected"] += 1
            return "drop"
    return None


def cmd_edn_faults(db, cmd, conn):
    """Test hook (not a MongoDB command): set the fault schedule; counts
    restart. Answers how many faults were injected and commands run so far."""
    with FAULT_LOCK:
        injected, commands = FAULTS["injected"], FAULTS["count"]
        for key, field in (("drop_every", "dropEvery"), ("error_every", "errorEvery"),
                           ("error_code", "errorCode"), ("outage_after", "outageAfter"),
                           ("outage_ms", "outageMs")):
            if field in cmd:
                FAULTS[key] = int(cmd[field])
        if "only" in cmd:
            FAULTS["only"] = str(cmd["only"] or "")
        FAULTS["count"] = 0
        FAULTS["outage_until"] = 0.0
    return {"injected": Int64(injected), "commands": Int64(commands), "ok": 1.0}


COMMANDS["ednFaults"] = cmd_edn_faults
LOCK_FREE.add(cmd_edn_faults)


def oversized(cmd):
    """The first document of a write command over MongoDB's statement limit."""
    for field in ("documents", "updates", "deletes"):
        for doc in cmd.get(field) or []:
            if isinstance(doc, dict) and len(bson.encode(doc)) > MAX_STATEMENT:
                return len(bson.encode(doc))
    return None


def run_command(cmd, db, conn, via="OP_MSG"):
    """Dispatch one command document; always returns a reply document."""
    reply = dispatch(cmd, db, conn, via)
    if cmd:
        count_command(next(iter(cmd)), reply)
    return reply


def dispatch(cmd, db, conn, via):
    """run_command without the counting."""
    if not cmd:
        return error_doc(9, "empty command")
    size = oversized(cmd)
    if size is not None:
        return error_doc(10334, "BSONObj size: %d is invalid. Size must be between 0 and %d"
                         % (size, MAX_STATEMENT))
    name = next(iter(cmd))
    db = cmd.get("$db", db)
    handler = COMMANDS.get(name)
    if VERBOSE:
        print("conn%d %s %s.%s %s" % (conn["id"], via, db, name, cmd), file=sys.stderr, flush=True)
    if handler is None:
        return error_doc(59, "no such command: '%s'" % name)
    if USERS and "user" not in conn and handler not in NO_AUTH:
        return error_doc(13, "command %s requires authentication" % name)
    try:
        if handler in LOCK_FREE:  # a long command must not starve the driver's monitor
            return handler(db, cmd, conn)
        with LOCK:
            return handler(db, cmd, conn)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
        try:
            return error_doc(*as_error(exc, "%s.%s" % (db, cmd.get(name))))
        except Exception:  # noqa: BLE001 - an unexpected bug: report it, keep serving
            traceback.print_exc(file=sys.stderr)
            return error_doc(1, "wire test server internal error: %r" % exc)


# --------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------

OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013
CHECKSUM_PRESENT, MORE_TO_COME = 1 << 0, 1 << 1
HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
REQUEST_IDS = itertools.count(1)
CONNECTION_IDS = itertools.count(1)
CONNECTIONS = set()
VERBOSE = False


def cstring(data, pos):
    end = data.index(b"\x00", pos)
    return data[pos:end].decode("utf-8"), end + 1


def parse_op_msg(data):
    """-> (flagBits, command) with kind-1 document sequences merged in as arrays."""
    (flags,) = struct.unpack_from("<I", data, 0)
    end = len(data) - (4 if flags & CHECKSUM_PRESENT else 0)
    pos, body, sequences = 4, None, {}
    while pos < end:
        kind, pos = data[pos], pos + 1
        (size,) = struct.unpack_from("<i", data, pos)
        if kind == 0:
            body = bson.decode(data[pos:pos + size], DECODE_OPTS)
        elif kind == 1:
            ident, docs_at = cstring(data, pos + 4)
            sequences.setdefault(ident, []).extend(
                bson.decode_all(data[docs_at:pos + size], DECODE_OPTS))
        else:
            raise ValueError("unknown OP_MSG section kind %d" % kind)
        pos += size
    if body is None:
        raise ValueError("OP_MSG without a body section")
    for ident, docs in sequences.items():
        body.setdefault(ident, []).extend(docs)
    return flags, body


def parse_op_query(data):
    """-> (database, command) for a legacy command on `<db>.$cmd`."""
    ns, pos = cstring(data, 4)  # skip flags
    pos += 8  # numberToSkip, numberToReturn
    (size,) = struct.unpack_from("<i", data, pos)
    query = bson.decode(data[pos:pos + size], DECODE_OPTS)
    if "$query" in query:
        query = query["$query"]
    return ns.split(".", 1)[0], query, ns


def frame(opcode, response_to, payload, compressor=None):
    if compressor:  # answer compressed as asked, as MongoDB does
        packed = zlib.compress(payload)
        count_bytes("compressor", len(payload), len(packed))
        payload = struct.pack("<iiB", opcode, len(payload), compressor) + packed
        opcode = OP_COMPRESSED
    return HEADER.pack(16 + len(payload), next(REQUEST_IDS), response_to, opcode) + payload


def uncompress(data):
    """OP_COMPRESSED body -> (original opcode, message, compressor id)."""
    opcode, size, compressor = struct.unpack_from("<iiB", data, 0)
    name = COMPRESSOR_IDS.get(compressor)
    if name != "noop" and name not in COMPRESSORS:
        raise ValueError("compressor id %d was not negotiated" % compressor)
    message = data[9:] if name == "noop" else zlib.decompress(data[9:])
    if len(message) != size:
        raise ValueError("OP_COMPRESSED declares %d bytes, holds %d" % (size, len(message)))
    if name != "noop":
        count_bytes("decompressor", len(data) - 9, size)
    return opcode, message, compressor if name != "noop" else None


def count_bytes(direction, size_in, size_out):
    with STATS_LOCK:
        stats = COMPRESSION_STATS["zlib"][direction]
        stats["bytesIn"] = Int64(stats["bytesIn"] + size_in)
        stats["bytesOut"] = Int64(stats["bytesOut"] + size_out)


class Connection(socketserver.BaseRequestHandler):
    def recv_exact(self, n):
        chunks = []
        while n:
            chunk = self.request.recv(min(n, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def handle(self):
        conn = {"id": next(CONNECTION_IDS)}
        CONNECTIONS.add(conn["id"])
        try:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            while self.serve_one(conn):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            CONNECTIONS.discard(conn["id"])

    def serve_one(self, conn):
        header = self.recv_exact(16)
        if header is None:
            return False
        length, request_id, _, opcode = HEADER.unpack(header)
        data = self.recv_exact(length - 16)
        if data is None:
            return False
        compressor = None
        if opcode == OP_COMPRESSED:
            try:
                opcode, data, compressor = uncompress(data)
            except (ValueError, zlib.error) as exc:
                print("wire test server: bad OP_COMPRESSED (%s), closing connection" % exc,
                      file=sys.stderr, flush=True)
                return False
        if opcode == OP_MSG:
            flags, cmd = parse_op_msg(data)
            fault = fault_for(next(iter(cmd), ""))
            if fault == "error":
                reply = error_doc(FAULTS["error_code"], "injected fault: retryable error")
                payload = struct.pack("<IB", 0, 0) + bson.encode(reply)
                self.request.sendall(frame(OP_MSG, request_id, payload, compressor))
                return True
            reply = run_command(cmd, "test", conn)
            if fault == "drop":
                return False  # executed, but the reply is lost with the connection
            if not flags & MORE_TO_COME:
                payload = struct.pack("<IB", 0, 0) + bson.encode(reply)
                self.request.sendall(frame(OP_MSG, request_id, payload, compressor))
        elif opcode == OP_QUERY:
            db, cmd, ns = parse_op_query(data)
            if ns.endswith(".$cmd"):
                reply, flags = run_command(cmd, db, conn, "OP_QUERY"), 0
            else:
                reply, flags = {"$err": "legacy OP_QUERY find is not supported", "code": 352}, 2
            payload = struct.pack("<iqii", flags, 0, 0, 1) + bson.encode(reply)
            self.request.sendall(frame(OP_REPLY, request_id, payload, compressor))
        else:
            print("wire test server: unsupported opcode %d, closing connection" % opcode,
                  file=sys.stderr, flush=True)
            return False
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls = None  # an ssl.SSLContext with --tls-cert

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls is not None:  # the handshake runs in the connection's thread
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


def main():
    global VERBOSE
    parser = argparse.ArgumentParser(description="MongoDB-wire-compatible test server (not MongoDB)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin is closed (the parent test process died)")
    parser.add_argument("--verbose", action="store_true", help="log every command to stderr")
    parser.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                        help="require authentication (SASL PLAIN) as one of these users")
    parser.add_argument("--tls-cert", help="serve TLS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--tls-ca", help="require a client certificate signed by this CA")
    parser.add_argument("--drop-every", type=int, default=0, metavar="K",
                        help="run every K-th command, then close the connection without replying")
    parser.add_argument("--error-every", type=int, default=0, metavar="K",
                        help="answer every K-th command with --error-code instead of running it")
    parser.add_argument("--error-code", type=int, default=91,
                        help="the error code of --error-every (default 91, ShutdownInProgress)")
    args = parser.parse_args()
    VERBOSE = args.verbose
    USERS.update(u.split(":", 1) for u in args.user)
    FAULTS.update(drop_every=args.drop_every, error_every=args.error_every,
                  error_code=args.error_code)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server = Server(("127.0.0.1", args.port), Connection)
    if args.tls_cert:
        server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_ca:
            server.tls.load_verify_locations(args.tls_ca)
            server.tls.verify_mode = ssl.CERT_REQUIRED
    if args.exit_on_stdin_eof:
        def watch_stdin():
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)
        threading.Thread(target=watch_stdin, daemon=True).start()
    print("LISTENING %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
