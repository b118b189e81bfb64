"""Reads through the read cache: which reads it may answer, and how.

A GetItem or Query is answered from :class:`~regionproxy._cache.store.ReadCache`
or loaded once (single flight); a BatchGetItem is served per key, the
misses fetched in one call; a GetItem made through the Python-value client
(Table, resource, ``meta.client``) keeps its own Python-value form, so a hit
serialises and deserialises nothing. :class:`CachedReads` decides and
bookkeeps; loading is the session's (``load``: the routed read).

An answer is cached only if the region that gave it has every write of
this session the read may see (the rule is in :mod:`regionproxy._routing.router`):
when a hedge or a failover brings the answer of another region within the
read-your-writes window, the session returns it and has it withheld
(:meth:`CachedReads.withhold`), so the next read asks again instead of
being served the item as it was before the session's own write.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from regionproxy._cache.keys import CACHEABLE_GET, VALUES, get_item_cache_key, query_tags, read_cache_key
from regionproxy._cache.store import MISS, ReadCache
from regionproxy._dynamodb.calls import Call
from regionproxy._dynamodb.keys import key_fingerprint, values_key_fingerprint
from regionproxy._dynamodb.tables import ARN_PREFIX, table_name
from regionproxy.events import CacheBypassed, CacheLookup, Hooks

# Reads the cache may answer (read_cache_key says which requests of them).
_CACHED_READS = frozenset({"GetItem", "Query", "BatchGetItem"})
_BATCH_SPEC = frozenset({"Keys", "ConsistentRead"})
# Set while the Python-value client loads a read for its own cache form:
# the wire-format cache would only keep a second copy of the same answer.
_UNCACHED: contextvars.ContextVar[bool] = contextvars.ContextVar("regionproxy_uncached", default=False)


class CachedReads:
    """The session's reads, through its cache.

    :param cache: the :class:`~regionproxy._cache.store.ReadCache`.
    :param load: the routed read of a call, for misses.
    :param hooks: where cache lookups and drops are announced.
    """

    def __init__(self, cache: ReadCache, load: Callable[[Call], dict[str, Any]], hooks: Hooks) -> None:
        self.cache = cache
        self._load = load
        self.hooks = hooks

    def __repr__(self) -> str:
        return f"CachedReads({self.cache!r})"

    def applies(self, operation: str) -> bool:
        """Whether a read of ``operation`` goes through the cache at all."""
        return operation in _CACHED_READS and not _UNCACHED.get()

    def hit(self, params: dict[str, Any]) -> Any:
        """A copy of the cached answer to a wire-format GetItem of ``params``,
        or :data:`~regionproxy._cache.store.MISS` (not cached, or not cacheable):
        asked before the session builds a :class:`Call`, so a hit builds
        nothing. A miss goes on to :meth:`read`, which loads it."""
        if _UNCACHED.get():
            return MISS
        key = get_item_cache_key(params)
        if key is None or not self.cache.caches(key[0]):
            return MISS
        return self._cached(key, "GetItem")

    def read(self, call: Call) -> dict[str, Any]:
        """A GetItem, Query or BatchGetItem through the cache, where it may be."""
        cache = self.cache
        if call.operation == "BatchGetItem":
            return self._batch_get(call)
        key = read_cache_key(call.operation, call.params)
        if key is None or not cache.caches(key[0]):
            return self._load(call)
        result = self._cached(key, call.operation)  # the hit path, with nothing a miss needs
        if result is not MISS:
            return result
        if call.operation == "GetItem":
            return self._load_once(key, call.operation, lambda: self._load(call), negative=_no_item)
        tags = query_tags(key[0], call.params)
        return self._load_once(key, call.operation, lambda: self._load(call), tags=tags)

    def withhold(self, call: Call) -> None:
        """Keep the answer now being loaded for ``call`` out of the cache, in
        every form (it is still returned to its readers): a GetItem's item,
        a Query's page, each item of a BatchGetItem. Marks their loads in
        flight stale, which is what keeps a load's answer out."""
        cache = self.cache
        if call.operation == "BatchGetItem":
            request = call.named.get("RequestItems")  # by table name (regionproxy._dynamodb.tables)
            if not isinstance(request, dict):
                return
            for table, spec in request.items():
                for key in spec.get("Keys", ()) if isinstance(spec, dict) else ():
                    fingerprint = key_fingerprint(key)
                    if fingerprint is not None:
                        cache.invalidate((table, fingerprint))
            return
        key = read_cache_key(call.operation, call.params) if call.operation in _CACHED_READS else None
        if key is not None:
            cache.invalidate(key)
            cache.invalidate((*key, VALUES))

    def read_values(self, operation: str, params: dict[str, Any], load: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``load()``'s answer in Python values, through the cache where it
        may be: the Python-value client (Table, resource, ``meta.client``)
        passes its uncached path as ``load`` (:meth:`execute`, deserialise),
        so a hit deserialises nothing. Each surface keeps what it returns:
        these answers are kept apart from the wire-format ones.

        A GetItem's ``params`` are in Python values (its key is read from
        them: nothing is serialised on a hit); a Query's are the wire-format
        request, once its conditions and values are transformed (the request
        is its key). Other reads use the wire-format cache inside ``load``.
        """
        cache = self.cache
        if operation == "Query":
            key = read_cache_key(operation, params)
            if key is None or not cache.caches(key[0]):
                return load()
            key = (*key, VALUES)
            result = self._cached(key, operation)
            if result is not MISS:
                return result
            return self._load_values(key, operation, load, tags=query_tags(key[0], params))
        if operation != "GetItem" or not params.keys() <= CACHEABLE_GET:
            return load()
        table = params.get("TableName")
        if table.__class__ is str and table[:4] == ARN_PREFIX:  # its name (regionproxy._dynamodb.tables)
            table = table_name(table)
        fingerprint = values_key_fingerprint(params.get("Key"))  # None: not a key, boto3 will say why
        if fingerprint is None or params.get("ConsistentRead", False) is not False or type(table) is not str:
            return load()
        if not cache.caches(table):
            return load()
        key = (table, fingerprint, VALUES)
        result = self._cached(key, operation)
        if result is not MISS:
            return result
        return self._load_values(key, operation, load, negative=_no_item)

    def _load_values(
        self,
        key: tuple[Any, ...],
        operation: str,
        load: Callable[[], dict[str, Any]],
        *,
        negative: Callable[[Any], bool] | None = None,
        tags: tuple[Any, ...] = (),
    ) -> dict[str, Any]:
        """:meth:`read_values` after a miss: ``load()`` once (single flight)."""

        def uncached_load() -> dict[str, Any]:
            # The load's own read skips the wire-format cache: it would only
            # keep a second copy of the same answer.
            token = _UNCACHED.set(True)
            try:
                return load()
            finally:
                _UNCACHED.reset(token)

        return self._load_once(key, operation, uncached_load, negative=negative, tags=tags)

    def _cached(self, key: tuple[Any, ...], operation: str) -> Any:
        """A copy of the answer cached under ``key`` (announced as a hit), or
        :data:`~regionproxy._cache.store.MISS`."""
        result = self.cache.lookup(key)
        if result is not MISS:
            self.hooks.emit(_lookup(key[0], operation, True))
        return result

    def _load_once(
        self,
        key: tuple[Any, ...],
        operation: str,
        load: Callable[[], dict[str, Any]],
        *,
        negative: Callable[[Any], bool] | None = None,
        tags: tuple[Any, ...] = (),
    ) -> dict[str, Any]:
        """``load()``'s answer cached under ``key``, loaded once for every
        concurrent miss (single flight); announced as a hit, a miss, or a
        read that bypassed the cache (a fleet's link is down)."""
        result, hit = self.cache.get_or_load(key, load, negative=negative, tags=tags)
        if hit is None:
            self.hooks.emit(CacheBypassed(key[0], operation))
            return result
        self.hooks.emit(_lookup(key[0], operation, hit))
        if not hit:
            self._emit_dropped()
        return result

    def _batch_get(self, call: Call) -> dict[str, Any]:
        """BatchGetItem: each key from the cache where it is; the rest in one
        call, its items (and its "no such item" answers) cached. Unprocessed
        keys reach the caller as DynamoDB returned them, to send again."""
        cache = self.cache
        request = call.params.get("RequestItems")
        if not isinstance(request, dict) or call.params.keys() - {"RequestItems", "ReturnConsumedCapacity"}:
            return self._load(call)
        if call.params.get("ReturnConsumedCapacity", "NONE") != "NONE":
            return self._load(call)
        # Answers are keyed by the tables as the request names them; the
        # cache by their names (regionproxy._dynamodb.tables).
        found: dict[str, list[Any]] = {}
        send: dict[str, Any] = {}
        wanted: dict[str, dict[Any, Any]] = {}  # table -> fingerprint -> key, of the keys sent
        names: dict[str, Any] = {}  # table as named -> its name
        metadata = None
        for table, spec in request.items():
            name = names[table] = table_name(table)
            keys = spec.get("Keys") if isinstance(spec, dict) else None
            if (
                not isinstance(keys, list)
                or not keys
                or len(keys) > 100
                or spec.keys() - _BATCH_SPEC
                or spec.get("ConsistentRead", False) is not False
                or not cache.caches(name)
                or not all(isinstance(key, dict) for key in keys)
            ):
                send[table] = spec
                continue
            prints = {key_fingerprint(key): key for key in keys}
            if None in prints:  # a key botocore does not send as it is: let it say why
                send[table] = spec
                continue
            if len(prints) != len(keys):  # DynamoDB refuses duplicates: let it say so
                return self._load(call)
            missing = wanted[table] = {}
            for fingerprint, key in prints.items():
                answer = cache.lookup((name, fingerprint))
                if answer is MISS:
                    missing[fingerprint] = key
                    continue
                metadata = metadata or answer.get("ResponseMetadata")
                found.setdefault(table, [])
                if "Item" in answer:
                    found[table].append(answer["Item"])
            if missing:
                send[table] = {**spec, "Keys": list(missing.values())}
        if not wanted:
            return self._load(call)  # no table of it is cached
        bypassing = cache.bypassing  # (the keys' count is the cache's, in begin())
        for table, missing in wanted.items():
            hits = len(request[table]["Keys"]) - len(missing)
            name = names[table]
            for hit in (True,) * hits + (False,) * len(missing):
                self.hooks.emit(CacheBypassed(name, "BatchGetItem") if bypassing and not hit else _lookup(name, "BatchGetItem", hit))
        if not send:
            response: dict[str, Any] = {"Responses": found, "UnprocessedKeys": {}}
            if metadata is not None:
                response["ResponseMetadata"] = metadata
            return response
        flights = cache.begin((names[table], fingerprint) for table, missing in wanted.items() for fingerprint in missing)
        try:
            # Of the request's own type: the sidecar's JSON-protocol request
            # stays one (regionproxy._regions.wire), so it is sent as JSON.
            response = self._load(Call("BatchGetItem", type(call.params)({**call.params, "RequestItems": send})))
            self._answer_batch(response, wanted, flights, names)
        finally:
            for key, flight in flights.items():
                cache.finish(key, flight)
        self._emit_dropped()
        for table, items in found.items():
            response.setdefault("Responses", {}).setdefault(table, []).extend(items)
        return response

    def _answer_batch(
        self, response: dict[str, Any], wanted: dict[str, dict[Any, Any]], flights: dict[Any, Any], tables: dict[str, Any]
    ) -> None:
        """Give each loaded key's flight its GetItem-shaped answer: the item
        returned, or none if the key was processed and no item came back."""
        metadata = response.get("ResponseMetadata")
        unprocessed = response.get("UnprocessedKeys") or {}
        for table, missing in wanted.items():
            if not missing:
                continue
            names = tuple(next(iter(missing.values())))
            left = set(missing)
            for item in (response.get("Responses") or {}).get(table, ()):
                fingerprint = key_fingerprint({name: item[name] for name in names if name in item})
                left.discard(fingerprint)
                flight = flights.get((tables[table], fingerprint))
                if flight is not None:
                    answer = {"Item": item, "ResponseMetadata": metadata} if metadata is not None else {"Item": item}
                    self.cache.answer(flight, answer, negative=False)
            for key in (unprocessed.get(table) or {}).get("Keys", ()):
                left.discard(key_fingerprint(key))
            for fingerprint in left:
                flight = flights.get((tables[table], fingerprint))
                if flight is not None:
                    self.cache.answer(flight, {"ResponseMetadata": metadata} if metadata is not None else {}, negative=True)

    def _emit_dropped(self) -> None:
        for event in self.cache.take_dropped():
            self.hooks.emit(event)


def _no_item(answer: dict[str, Any]) -> bool:
    """A GetItem answer that says "no such item" (cached ``negative_ttl``)."""
    return "Item" not in answer


_LOOKUPS: dict[tuple[str, str, bool], CacheLookup] = {}


def _lookup(table: str, operation: str, hit: bool) -> CacheLookup:
    """The (immutable) event of one cache lookup, built once per table,
    operation and result: a frozen dataclass costs about a microsecond to
    build, as much as the rest of a hit."""
    event = _LOOKUPS.get((table, operation, hit))
    if event is None:
        event = CacheLookup(table, operation, hit)
        if len(_LOOKUPS) < 10_000:  # table names come from callers: bounded
            _LOOKUPS[(table, operation, hit)] = event
    return event
