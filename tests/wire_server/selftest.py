#!/usr/bin/env python3
"""Self-test of the wire test server (server.py) with pymongo as the client.

Starts server.py as a subprocess on a free port, runs every supported command
through pymongo and checks the results. Prints `N passed, M failed` last and
exits non-zero when anything failed.

    python3 tests/wire_server/selftest.py
"""

import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import bson
from bson import Decimal128, Int64, ObjectId
from bson.codec_options import CodecOptions
from pymongo import (ASCENDING, DESCENDING, DeleteMany, DeleteOne, InsertOne, MongoClient,
                     ReplaceOne, ReturnDocument, UpdateMany, UpdateOne, monitoring)
from pymongo.errors import BulkWriteError, CollectionInvalid, DuplicateKeyError, OperationFailure

SERVER = Path(__file__).with_name("server.py")
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Commands(monitoring.CommandListener):
    """Records the names of the commands pymongo sends."""

    def __init__(self):
        self.names = []

    def started(self, event):
        self.names.append(event.command_name)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def start_server(*extra):
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("LISTENING "), "unexpected first line %r" % line
    return proc, int(line.split()[1])


def expect_code(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except OperationFailure as exc:
        assert exc.code == code, "expected code %s, got %s (%s)" % (code, exc.code, exc)
        return exc
    raise AssertionError("expected an error with code %s" % code)


# ---------------------------------------------------------------------------

@test
def handshake_and_admin_commands(c, db, events):
    info = c.server_info()
    assert info["version"] == "6.0.0-wire-test-server", info
    hello = c.admin.command("hello")
    assert hello["isWritablePrimary"] is True and hello["maxWireVersion"] == 17
    assert hello["helloOk"] is True and hello["logicalSessionTimeoutMinutes"] == 30
    assert "setName" not in hello  # standalone
    legacy = c.admin.command("isMaster")
    assert legacy["ismaster"] is True
    assert c.admin.command("ping")["ok"] == 1.0
    assert c.admin.command("serverStatus")["process"] == "mongod"
    assert c.admin.command("getLastError")["ok"] == 1.0
    exc = expect_code(59, db.command, "frobnicate")
    assert exc.details["codeName"] == "CommandNotFound", exc.details
    assert "no such command: 'frobnicate'" in exc.details["errmsg"]


@test
def insert_many_and_find_with_getmore(c, db, events):
    coll = db.people
    res = coll.insert_many([{"_id": i, "name": "p%d" % i, "age": 20 + (i * 7) % 11} for i in range(9)])
    assert res.inserted_ids == list(range(9))
    before = events.names.count("getMore")
    ages = [d["age"] for d in coll.find({}, {"age": 1, "_id": 0}).sort("age", DESCENDING).batch_size(2)]
    assert ages == sorted(ages, reverse=True) and len(ages) == 9, ages
    assert events.names.count("getMore") - before >= 4, "expected getMores"
    got = [d["_id"] for d in coll.find({"age": {"$gte": 25}}).sort([("age", 1), ("_id", -1)]).skip(1).limit(3)]
    expected = sorted([d for d in range(9) if 20 + (d * 7) % 11 >= 25],
                      key=lambda i: (20 + (i * 7) % 11, -i))[1:4]
    assert got == expected, (got, expected)
    doc = coll.find_one({"_id": 3}, {"name": 1})
    assert doc == {"_id": 3, "name": "p3"}, doc
    assert coll.find_one({"_id": 99}) is None


@test
def default_batch_is_101_then_getmore(c, db, events):
    coll = db.many
    coll.insert_many([{"_id": i, "pad": "x" * 50} for i in range(250)])
    before = events.names.count("getMore")
    assert [d["_id"] for d in coll.find().sort("_id", 1)] == list(range(250))
    assert events.names.count("getMore") - before == 1


@test
def cursor_close_kills_cursor(c, db, events):
    db.kc.insert_many([{"_id": i} for i in range(10)])
    cur = db.kc.find().batch_size(2)
    next(cur)
    cur.close()
    assert "killCursors" in events.names
    expect_code(43, db.command, "getMore", Int64(123456789), collection="kc")


@test
def upsert_with_operators(c, db, events):
    coll = db.ups
    res = coll.update_one({"key": "a"}, {"$set": {"v": 1}, "$setOnInsert": {"created": True},
                                         "$push": {"log": "first"}, "$addToSet": {"tags": "x"}},
                          upsert=True)
    assert res.upserted_id is not None and res.matched_count == 0
    doc = coll.find_one({"key": "a"})
    assert list(doc) == ["_id", "key", "v", "created", "log", "tags"], list(doc)
    res = coll.update_one({"key": "a"}, {"$set": {"v": 2}, "$setOnInsert": {"created": False},
                                         "$push": {"log": "second"}, "$addToSet": {"tags": "x"},
                                         "$unset": {"nothing": ""}}, upsert=True)
    assert res.matched_count == 1 and res.modified_count == 1 and res.upserted_id is None
    doc = coll.find_one({"key": "a"})
    assert doc["v"] == 2 and doc["created"] is True and doc["log"] == ["first", "second"]
    assert doc["tags"] == ["x"]
    res = coll.update_many({}, {"$inc": {"v": 1}})
    assert res.matched_count == 1 and coll.find_one()["v"] == 3
    res = coll.update_one({"key": "zzz"}, {"$set": {"v": 1}})
    assert res.matched_count == 0 and res.modified_count == 0


@test
def replace_one_and_immutable_id(c, db, events):
    coll = db.repl
    coll.insert_one({"_id": 1, "a": 1, "b": 2})
    res = coll.replace_one({"_id": 1}, {"z": 26, "a": "new"})
    assert res.matched_count == 1 and res.modified_count == 1
    assert coll.find_one({"_id": 1}) == {"_id": 1, "z": 26, "a": "new"}
    res = coll.replace_one({"_id": 2}, {"x": 1}, upsert=True)
    assert res.upserted_id == 2 and coll.find_one({"_id": 2}) == {"_id": 2, "x": 1}
    try:
        coll.replace_one({"_id": 1}, {"_id": 7, "a": 1})
        raise AssertionError("changing _id must fail")
    except OperationFailure as exc:
        assert exc.code == 66, exc
    assert coll.find_one({"_id": 1}) == {"_id": 1, "z": 26, "a": "new"}, "store left intact"
    assert coll.find_one({"_id": 7}) is None


@test
def delete_many_and_one(c, db, events):
    coll = db.dels
    coll.insert_many([{"_id": i, "even": i % 2 == 0} for i in range(10)])
    assert coll.delete_many({"even": True}).deleted_count == 5
    assert coll.delete_one({"even": False}).deleted_count == 1
    assert coll.delete_one({"_id": 999}).deleted_count == 0
    assert coll.count_documents({}) == 4


@test
def bulk_write_mixed(c, db, events):
    coll = db.bulk
    coll.insert_many([{"_id": i, "v": i} for i in range(5)])
    res = coll.bulk_write([
        InsertOne({"_id": 10, "v": 10}),
        UpdateOne({"_id": 0}, {"$set": {"v": 100}}),
        UpdateMany({"v": {"$lt": 5}}, {"$set": {"small": True}}),
        ReplaceOne({"_id": 2}, {"v": 200}),
        UpdateOne({"_id": 20}, {"$set": {"v": 20}}, upsert=True),
        DeleteOne({"_id": 3}),
        DeleteMany({"v": {"$gte": 200}}),
    ])
    assert res.inserted_count == 1, res.bulk_api_result
    assert res.matched_count == 1 + 4 + 1, res.bulk_api_result
    assert res.modified_count == 1 + 4 + 1, res.bulk_api_result
    assert res.upserted_ids == {4: 20}, res.upserted_ids
    assert res.deleted_count == 1 + 1, res.bulk_api_result
    assert sorted(d["_id"] for d in coll.find()) == [0, 1, 4, 10, 20]
    try:
        coll.bulk_write([InsertOne({"_id": 30}), InsertOne({"_id": 0}), InsertOne({"_id": 31})],
                        ordered=False)
        raise AssertionError("duplicate _id must fail")
    except BulkWriteError as exc:
        assert exc.details["nInserted"] == 2, exc.details
        assert [(e["index"], e["code"]) for e in exc.details["writeErrors"]] == [(1, 11000)]


@test
def unique_index_enforced(c, db, events):
    coll = db.uniq
    coll.insert_many([{"_id": 1, "email": "a@x"}, {"_id": 2, "email": "b@x"}])
    assert coll.create_index([("email", ASCENDING)], unique=True) == "email_1"
    assert coll.create_index([("email", ASCENDING)], unique=True) == "email_1"  # idempotent
    try:
        coll.insert_one({"_id": 3, "email": "a@x"})
        raise AssertionError("duplicate insert must fail")
    except DuplicateKeyError as exc:
        assert exc.code == 11000
    try:
        coll.update_one({"_id": 2}, {"$set": {"email": "a@x"}})
        raise AssertionError("duplicate update must fail")
    except DuplicateKeyError as exc:
        assert exc.code == 11000
    try:
        coll.insert_many([{"_id": 4, "email": "c@x"}, {"_id": 5, "email": "a@x"}, {"_id": 6}])
        raise AssertionError("ordered insert_many must stop at the duplicate")
    except BulkWriteError as exc:
        assert exc.details["nInserted"] == 1 and exc.details["writeErrors"][0]["index"] == 1
    assert coll.count_documents({}) == 3
    # a unique index treats a missing field as null: two docs without it collide
    coll.insert_many([{"_id": 7, "grp": 1, "email": "d@x"}, {"_id": 8, "grp": 1, "email": "e@x"}])
    exc = expect_code(11000, coll.create_index, "grp", unique=True)
    names = [i["name"] for i in coll.list_indexes()]
    assert names == ["_id_", "email_1"], names


@test
def list_and_drop_indexes(c, db, events):
    coll = db.idx
    coll.insert_one({"_id": 1, "a": 1, "b": 1})
    coll.create_index([("a", 1), ("b", -1)], name="a_b")
    coll.create_index("b", sparse=True)
    idx = {i["name"]: i for i in coll.list_indexes()}
    assert list(idx) == ["_id_", "a_b", "b_1"], list(idx)
    assert dict(idx["_id_"]["key"]) == {"_id": 1}
    assert list(idx["a_b"]["key"].items()) == [("a", 1), ("b", -1)]
    assert idx["b_1"]["sparse"] is True
    assert coll.index_information()["a_b"]["key"] == [("a", 1), ("b", -1)]
    expect_code(85, coll.create_index, [("a", 1), ("b", -1)], name="other_name")
    expect_code(86, coll.create_index, [("b", 1)], name="a_b")
    coll.drop_index("a_b")
    expect_code(27, coll.drop_index, "a_b")
    expect_code(72, coll.drop_index, "_id_")
    coll.drop_indexes()
    assert [i["name"] for i in coll.list_indexes()] == ["_id_"]
    assert list(db.no_such_coll.list_indexes()) == []  # pymongo swallows NamespaceNotFound
    expect_code(26, db.command, "listIndexes", "no_such_coll")


@test
def collections_create_list_rename_drop(c, db, events):
    db.create_collection("alpha")
    try:
        db.create_collection("alpha")
        raise AssertionError("second create must fail")
    except CollectionInvalid:
        pass
    expect_code(48, db.command, "create", "alpha")
    db.beta.insert_one({"_id": 1})
    names = db.list_collection_names()
    assert "alpha" in names and "beta" in names
    assert db.list_collection_names(filter={"name": "beta"}) == ["beta"]
    assert db.list_collection_names(filter={"name": {"$regex": "^al"}}) == ["alpha"]
    full = [x for x in db.list_collections() if x["name"] == "alpha"][0]
    assert full["type"] == "collection" and full["options"] == {} and full["info"]["readOnly"] is False
    db.beta.create_index("k")
    db.beta.rename("gamma")
    assert "beta" not in db.list_collection_names() and db.gamma.find_one() == {"_id": 1}
    assert "k_1" in db.gamma.index_information()
    expect_code(48, db.gamma.rename, "alpha")
    db.gamma.rename("alpha", dropTarget=True)
    assert db.alpha.find_one() == {"_id": 1}
    expect_code(26, db.nothing_here.rename, "x")
    expect_code(26, c.admin.command, "renameCollection", db.name + ".nothing_here", to=db.name + ".x")
    db.alpha.drop()
    assert "alpha" not in db.list_collection_names()
    db.alpha.drop()  # pymongo ignores NamespaceNotFound
    expect_code(26, db.command, "drop", "alpha")


@test
def counts_distinct(c, db, events):
    coll = db.cnt
    coll.insert_many([{"_id": i, "k": i % 3} for i in range(10)])
    assert coll.count_documents({}) == 10
    assert coll.count_documents({"k": 1}) == 3
    assert coll.count_documents({}, skip=2, limit=5) == 5
    assert coll.estimated_document_count() == 10
    assert db.never.estimated_document_count() == 0
    assert db.never.count_documents({}) == 0
    assert sorted(coll.distinct("k")) == [0, 1, 2]
    assert sorted(coll.distinct("_id", {"k": 2})) == [2, 5, 8]


@test
def aggregate_pipeline(c, db, events):
    coll = db.agg
    coll.insert_many([{"_id": i, "g": "ab"[i % 2], "n": Int64(i), "x": i} for i in range(10)])
    out = list(coll.aggregate([
        {"$match": {"x": {"$gte": 2}}},
        {"$group": {"_id": "$g", "total": {"$sum": "$n"}, "count": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ], allowDiskUse=True))
    assert out == [{"_id": "a", "total": 20, "count": 4}, {"_id": "b", "total": 24, "count": 4}], out
    assert type(out[0]["total"]) is Int64 and type(out[0]["count"]) is int
    assert list(out[0]) == ["_id", "total", "count"]
    assert list(coll.aggregate([{"$match": {"g": "a"}}, {"$count": "c"}])) == [{"c": 5}]
    out = list(coll.aggregate([{"$sort": {"x": -1}}, {"$limit": 3}, {"$project": {"x": 1, "_id": 0}}]))
    assert out == [{"x": 9}, {"x": 8}, {"x": 7}], out
    before = events.names.count("getMore")
    assert len(list(coll.aggregate([{"$match": {}}], batchSize=3))) == 10
    assert events.names.count("getMore") - before >= 3


@test
def find_and_modify(c, db, events):
    coll = db.fam
    coll.insert_many([{"_id": i, "v": i} for i in range(3)])
    old = coll.find_one_and_update({"v": {"$gte": 1}}, {"$inc": {"v": 10}}, sort=[("v", -1)])
    assert old == {"_id": 2, "v": 2}, old
    new = coll.find_one_and_update({"_id": 1}, {"$set": {"w": 1}}, return_document=ReturnDocument.AFTER,
                                   projection={"w": 1})
    assert new == {"_id": 1, "w": 1}, new
    up = coll.find_one_and_update({"_id": 9}, {"$set": {"v": 9}}, upsert=True,
                                  return_document=ReturnDocument.AFTER)
    assert up == {"_id": 9, "v": 9}, up
    assert coll.find_one_and_update({"_id": 10}, {"$set": {"v": 9}}) is None
    rep = coll.find_one_and_replace({"_id": 0}, {"r": True}, return_document=ReturnDocument.AFTER)
    assert rep == {"_id": 0, "r": True}, rep
    gone = coll.find_one_and_delete({"_id": 9})
    assert gone == {"_id": 9, "v": 9} and coll.find_one({"_id": 9}) is None
    raw = db.command("findAndModify", "fam", query={"_id": 50}, update={"$set": {"a": 1}}, upsert=True)
    assert raw["lastErrorObject"] == {"n": 1, "updatedExisting": False, "upserted": 50}, raw


@test
def bson_types_round_trip(c, db, events):
    coll = db.types
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=timezone.utc)
    oid = ObjectId()
    doc = {"_id": oid, "i32": 7, "i64": Int64(7), "big": Int64(2 ** 40), "f": 7.0,
           "when": when, "dec": Decimal128("1.10"), "bin": b"\x00\x01", "none": None,
           "nested": {"z": 1, "a": [Int64(1), 2, {"y": 1.5, "b": when}]}, "arr": [3, 2, 1]}
    coll.insert_one(doc)
    got = coll.find_one({"_id": oid})
    assert list(got) == list(doc), list(got)
    assert list(got["nested"]) == ["z", "a"]
    assert type(got["i32"]) is int and type(got["i64"]) is Int64 and type(got["big"]) is Int64
    assert type(got["f"]) is float and got["f"] == 7.0
    assert got["when"] == when.replace(microsecond=123000) and got["when"].tzinfo is not None
    assert got["dec"] == Decimal128("1.10") and got["bin"] == b"\x00\x01" and got["none"] is None
    assert type(got["nested"]["a"][0]) is Int64 and type(got["nested"]["a"][1]) is int
    assert got["nested"]["a"][2]["b"] == when.replace(microsecond=123000)
    assert got["_id"] == oid
    coll.update_one({"_id": oid}, {"$inc": {"i64": 1, "i32": 1}, "$set": {"set64": Int64(5)},
                                   "$push": {"arr": Int64(0)}})
    got = coll.find_one({"_id": oid})
    assert type(got["i64"]) is Int64 and got["i64"] == 8
    assert type(got["i32"]) is int and got["i32"] == 8
    assert type(got["set64"]) is Int64 and type(got["arr"][-1]) is Int64
    assert coll.find_one({"when": when}) is not None  # query by datetime
    assert coll.find_one({"i64": 8}) is not None  # int64 matches a plain number


@test
def unacknowledged_write_more_to_come(c, db, events):
    coll = db.get_collection("w0", write_concern=__import__("pymongo").WriteConcern(w=0))
    coll.insert_one({"_id": 1})
    coll.insert_many([{"_id": 2}, {"_id": 3}])
    for _ in range(50):
        if db.w0.count_documents({}) == 3:
            break
        time.sleep(0.05)
    assert db.w0.count_documents({}) == 3


@test
def databases_list_and_drop(c, db, events):
    other = c["selftest_other"]
    other.x.insert_one({"_id": 1})
    assert "selftest_other" in c.list_database_names()
    assert any(d["name"] == "selftest_other" for d in c.list_databases())
    c.drop_database("selftest_other")
    assert "selftest_other" not in c.list_database_names()


@test
def concurrent_clients(c, db, events):
    port = c.address[1]
    errors = []

    def worker(k):
        try:
            with MongoClient("mongodb://127.0.0.1:%d/?directConnection=true" % port) as cl:
                for i in range(50):
                    cl[db.name].conc.insert_one({"_id": "%d-%d" % (k, i)})
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert db.conc.count_documents({}) == 200


@test
def raw_wire_frames(c, db, events):
    """Frames no driver here sends: checksumPresent, moreToCome, OP_QUERY by hand."""
    def frame(request_id, opcode, payload):
        return struct.pack("<iiii", 16 + len(payload), request_id, 0, opcode) + payload

    def op_msg(request_id, flags, body, seq=None, checksum=False):
        payload = struct.pack("<I", flags) + b"\x00" + bson.encode(body)
        if seq:
            ident, docs = seq
            chunk = ident.encode() + b"\x00" + b"".join(bson.encode(d) for d in docs)
            payload += b"\x01" + struct.pack("<i", 4 + len(chunk)) + chunk
        if checksum:
            payload += b"\xde\xad\xbe\xef"  # the server must ignore it
        return frame(request_id, 2013, payload)

    def read_reply(sock):
        header = b""
        while len(header) < 16:
            header += sock.recv(16 - len(header))
        length, _, response_to, opcode = struct.unpack("<iiii", header)
        data = b""
        while len(data) < length - 16:
            data += sock.recv(length - 16 - len(data))
        return response_to, opcode, data

    with socket.create_connection(c.address, timeout=10) as sock:
        sock.sendall(op_msg(7, 1, {"insert": "raw", "$db": db.name},
                            ("documents", [{"_id": 1}, {"_id": 2}]), checksum=True))
        response_to, opcode, data = read_reply(sock)
        reply = bson.decode(data[5:])
        assert (response_to, opcode, reply["n"]) == (7, 2013, 2), (response_to, opcode, reply)
        sock.sendall(op_msg(8, 2, {"insert": "raw", "documents": [{"_id": 3}], "$db": db.name}))
        sock.sendall(op_msg(9, 0, {"count": "raw", "$db": db.name}))
        response_to, _, data = read_reply(sock)  # moreToCome got no reply: this is for 9
        assert response_to == 9 and bson.decode(data[5:])["n"] == 3
        query = (struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1)
                 + bson.encode({"isMaster": 1, "helloOk": True}))
        sock.sendall(frame(10, 2004, query))
        response_to, opcode, data = read_reply(sock)
        flags, cursor_id, _, number = struct.unpack_from("<iqii", data)
        reply = bson.decode(data[20:])
        assert (response_to, opcode, flags, cursor_id, number) == (10, 1, 0, 0, 1)
        assert reply["ismaster"] is True and reply["maxWireVersion"] == 17


@test
def exits_on_stdin_eof(c, db, events):
    proc, _ = start_server("--exit-on-stdin-eof")
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


@test
def exits_on_sigterm(c, db, events):
    proc, port = start_server()
    with MongoClient("mongodb://127.0.0.1:%d/?directConnection=true" % port) as cl:
        cl.admin.command("ping")
    proc.terminate()
    proc.wait(timeout=10)


@test
def equality_is_as_strict_as_mongodb(c, db, events):
    coll = db.strict
    coll.insert_many([
        {"_id": 1, "e": {"a": 1, "b": 2}, "flag": True, "n": Int64(5), "z": None},
        {"_id": 2, "e": {"b": 2, "a": 1}, "flag": 1, "n": 5.0},
    ])
    ids = lambda q: sorted(d["_id"] for d in coll.find(q))
    assert ids({"e": {"a": 1, "b": 2}}) == [1], "embedded documents compare in field order"
    assert ids({"e": {"$in": [{"b": 2, "a": 1}]}}) == [2]
    assert ids({"flag": True}) == [1] and ids({"flag": 1}) == [2], "booleans are not numbers"
    assert ids({"n": 5}) == [1, 2], "numbers compare by value"
    assert ids({"n": {"$type": "long"}}) == [1] and ids({"n": {"$type": "double"}}) == [2]
    assert ids({"z": {"$type": "null"}}) == [1], "$type null is not a missing field"
    assert ids({"z": None}) == [1, 2], "but {z: null} matches missing too"
    assert ids({"e.a": {"$nin": [1]}}) == []


@test
def updates_refuse_conflicts_and_add_fields_in_path_order(c, db, events):
    coll = db.upd_order
    coll.insert_one({"_id": 1, "a": {"z": 0}, "list": [1]})
    coll.update_one({"_id": 1}, {"$set": {"a.y": 1, "a.b": 2, "a.10": 3, "a.9": 4}})
    assert list(coll.find_one({"_id": 1})["a"]) == ["z", "9", "10", "b", "y"]
    expect_code(40, coll.update_one, {"_id": 1}, {"$set": {"list.0": 5}, "$push": {"list": 6}})


@test
def documents_over_16_mib_are_refused(c, db, events):
    coll = db.big
    coll.insert_one({"_id": 1, "pad": "x" * (9 * 1024 * 1024)})
    expect_code(17419, coll.update_one, {"_id": 1}, {"$set": {"more": "y" * (8 * 1024 * 1024)}})
    assert "more" not in coll.find_one({"_id": 1}), "a refused update changes nothing"


@test
def faults_drop_connections_and_answer_retryable_errors(c, db, events):
    proc, port = start_server("--error-every", "2", "--error-code", "91")
    try:
        with MongoClient("mongodb://127.0.0.1:%d/?directConnection=true&retryReads=false"
                         "&serverSelectionTimeoutMS=5000" % port) as cl:
            cl.f.c.insert_one({"_id": 1})
            try:
                cl.f.c.insert_one({"_id": 2})
                raise AssertionError("expected the injected error")
            except Exception as exc:  # noqa: BLE001 - pymongo: NotPrimaryError
                assert (getattr(exc, "details", None) or {}).get("code") == 91, exc
            assert cl.f.c.count_documents({}) == 1, "the faulted insert did not run"
            cl.admin.command("ednFaults", 1, dropEvery=2, errorEvery=0)
            cl.f.c.insert_one({"_id": 3})
            try:
                cl.f.c.insert_one({"_id": 4})
                raise AssertionError("the connection should have dropped")
            except Exception as e:  # noqa: BLE001 - AutoReconnect and friends
                assert "injected" not in str(e)
            reply = cl.admin.command("ednFaults", 1, dropEvery=0)
            assert reply["injected"] >= 2, reply
            assert cl.f.c.find_one({"_id": 4}) == {"_id": 4}, "a dropped command still ran"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    proc, port = start_server("--exit-on-stdin-eof")
    events = Commands()
    client = MongoClient("mongodb://127.0.0.1:%d/?directConnection=true" % port,
                         event_listeners=[events], tz_aware=True, serverSelectionTimeoutMS=5000)
    db = client.get_database("selftest", codec_options=CodecOptions(tz_aware=True))
    passed = failed = 0
    try:
        for fn in TESTS:
            try:
                fn(client, db, events)
                passed += 1
                print("PASS", fn.__name__)
            except Exception:  # noqa: BLE001
                failed += 1
                print("FAIL", fn.__name__)
                traceback.print_exc()
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
