"""MongoDB in a backup: every database the stackbill user can read (but admin, config and local), written in
mongodump's on-disk layout with pymongo's `bson`, so `mongorestore --dir` could read it:

    mongodb/<db>/<collection>.bson            the documents, concatenated BSON, as the server sent them
    mongodb/<db>/<collection>.metadata.json   {"options", "indexes", "uuid", "collectionName", "type"}
                                              in canonical extended JSON, as mongodump writes it

A restore works like `mongorestore --drop`: each collection in the archive is dropped, re-created with its
options, filled, and given its indexes again; collections the archive does not hold are left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from sbops.backup import archive

if TYPE_CHECKING:
    from sbops.backup.archive import Opened, Stage
    from sbops.context import Context

LAYER = "mongodb"
SYSTEM_DBS = frozenset({"admin", "config", "local"})
BATCH = 1000
INDEX_KEYS_DROPPED = ("v", "key", "ns", "background")


# -- pure ---------------------------------------------------------------------------------------------------
def part_names(db: str, collection: str) -> tuple[str, str]:
    base = f"{LAYER}/{db}/{collection}"
    return base + ".bson", base + ".metadata.json"


def wanted_databases(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n not in SYSTEM_DBS)


def metadata(collection: str, options: dict[str, Any], indexes: list[dict[str, Any]], uuid: str = "") -> dict[str, Any]:
    """mongodump's metadata document."""
    return {"options": options, "indexes": indexes, "uuid": uuid, "collectionName": collection, "type": "collection"}


def index_model_args(index: dict[str, Any]) -> tuple[list[tuple[str, Any]], dict[str, Any]] | None:
    """(keys, options) for create_index from a listIndexes entry; None for the _id index (always there)."""
    if index.get("name") == "_id_":
        return None
    keys = list(dict(index["key"]).items())
    options = {k: v for k, v in index.items() if k not in INDEX_KEYS_DROPPED}
    return keys, options


# -- I/O --------------------------------------------------------------------------------------------------------
def client(ctx: "Context") -> Any:
    """The stackbill login, else the configured admin login (mongodb.admin_user: a restore after the user was
    dropped)."""
    from sbops.probes.mongodb.session import admin_login, app_login

    login = app_login(ctx)
    if login.ok:
        return login.client
    admin = admin_login(ctx)
    if admin is not None and admin.ok:
        return admin.client
    raise RuntimeError(f"cannot log in to MongoDB as {login.user}: ({login.code}) {login.error}"
                       + (f"; nor as {admin.user}: ({admin.code}) {admin.error}" if admin is not None else ""))


def _raw(db: Any, name: str) -> Any:
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    return db.get_collection(name, codec_options=CodecOptions(document_class=RawBSONDocument))


def collections(db: Any) -> list[dict[str, Any]]:
    return sorted((c for c in db.list_collections() if c.get("type", "collection") == "collection"
                   and not str(c["name"]).startswith("system.")), key=lambda c: str(c["name"]))


def counts(c: Any, databases: Iterable[str]) -> dict[str, int]:
    found = {}
    for name in databases:
        db = c[name]
        for coll in collections(db):
            found[f"{name}.{coll['name']}"] = db[coll["name"]].count_documents({})
    return found


def backup(ctx: "Context", stage: "Stage", progress: Any) -> dict[str, Any]:
    from bson import json_util

    c = client(ctx)
    build = c.admin.command("buildInfo")
    databases = wanted_databases(c.list_database_names())
    docs: dict[str, int] = {}
    for name in databases:
        db = c[name]
        for coll in collections(db):
            cname = str(coll["name"])
            data_part, meta_part = part_names(name, cname)
            n = 0
            with stage.open(data_part) as out:
                for doc in _raw(db, cname).find({}, batch_size=BATCH):
                    out.write(doc.raw)
                    n += 1
                    if n % BATCH == 0:
                        progress.show(f"mongodb: {name}.{cname}: {n} documents")
            stage.add(data_part, LAYER)
            uuid = coll.get("info", {}).get("uuid")
            meta = metadata(cname, dict(coll.get("options", {})), [dict(i) for i in db[cname].list_indexes()],
                            uuid.hex() if hasattr(uuid, "hex") else "")
            stage.write(meta_part, LAYER, json_util.dumps(meta, json_options=json_util.CANONICAL_JSON_OPTIONS).encode())
            docs[f"{name}.{cname}"] = n
    return {"versions": {"server": str(build.get("version", ""))}, "databases": databases, "collections": docs}


def _collections_of(opened: "Opened") -> list[tuple[str, str]]:
    return [tuple(k.split(".", 1)) for k in opened.manifest.layers.get(LAYER, {}).get("collections", {})]  # type: ignore[misc]


def plan(opened: "Opened") -> list[str]:
    info = opened.manifest.layers.get(LAYER, {})
    if not info.get("collections"):
        return []
    total = sum(int(v) for v in info["collections"].values())
    return [f"replace {len(info['collections'])} collections of {', '.join(info.get('databases', []))} "
            f"({total} documents, {_size(opened.manifest.size_of(LAYER))}); other collections are left alone"]


def _size(n: int) -> str:
    from sbops.backup.archive import human

    return human(n)


def restore(ctx: "Context", opened: "Opened", progress: Any) -> dict[str, Any]:
    import bson
    from bson import json_util
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    c = client(ctx)
    raw = CodecOptions(document_class=RawBSONDocument)
    restored = 0
    for db_name, cname in _collections_of(opened):
        data_part, meta_part = part_names(db_name, cname)
        meta = json_util.loads(opened.file(meta_part).read_text())
        db = c[db_name]
        db.drop_collection(cname)
        options = {k: v for k, v in dict(meta.get("options") or {}).items()}
        db.create_collection(cname, **options)
        coll = _raw(db, cname)
        batch: list[Any] = []
        n = 0
        with open(opened.file(data_part), "rb") as handle:
            for doc in bson.decode_file_iter(handle, codec_options=raw):
                batch.append(doc)
                if len(batch) >= BATCH:
                    coll.insert_many(batch, ordered=True)
                    n += len(batch)
                    batch = []
                    progress.show(f"mongodb: {db_name}.{cname}: {n} documents")
        if batch:
            coll.insert_many(batch, ordered=True)
            n += len(batch)
        for index in meta.get("indexes", []):
            args = index_model_args(dict(index))
            if args is not None:
                db[cname].create_index(args[0], **args[1])
        restored += n
    return {"documents": restored}


def verify(ctx: "Context", opened: "Opened") -> list[str]:
    c = client(ctx)
    info = opened.manifest.layers.get(LAYER, {})
    expected = {k: int(v) for k, v in dict(info.get("collections", {})).items()}
    observed = {}
    for key in expected:
        db_name, cname = key.split(".", 1)
        if cname in c[db_name].list_collection_names():
            observed[key] = c[db_name][cname].count_documents({})
    return archive.count_differences(expected, observed, "documents")
