"""Participants' keys, in Postgres: the one table no service builds from the log.

A key is made the first time an event of a participant (an account's number) is published,
and deleted to erase that participant (``sealing`` explains why). Every service reads the
same table, as it would a key vault: a key that a rebuild could recreate from the log would
erase nothing. ``KEYRING_SCHEMA`` places it (rebuilds write their own schema, not this one).

Keys are cached in each process, so a busy participant costs no query per event; a cached
key is used for at most ``KEYRING_CACHE_S`` after it was read, so a deleted key stops
opening events everywhere within that time. An erased subject is never used again (a
participant who writes after being erased gets a new subject and key), so "erased" is
cached for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar
from uuid import UUID, uuid4

import asyncpg

from parley_shared.bus import BrokerUnavailable, Preparer, Publisher
from parley_shared.db import TRANSIENT_DB_ERRORS, Connection, Pool
from parley_shared.events import Envelope
from parley_shared.identity import bare_number
from parley_shared.sealing import (
    ERASED,
    forgotten,
    new_key,
    opened,
    participant_of,
    personal,
    seal,
)

TABLE = "parley_keyring"
CHANNEL = "parley_keyring_erased"
# Whatever keeps a key from being had: the table may also not exist yet (a gateway that
# started before any migration).
KEYRING_ERRORS: tuple[type[Exception], ...] = (*TRANSIENT_DB_ERRORS, OSError, asyncpg.PostgresError)

E = TypeVar("E", bound=Envelope)
K = TypeVar("K")
V = TypeVar("V")


class _Expiring(Generic[K, V]):
    """A bounded map whose entries lapse ``ttl_s`` after they were put (all share the ttl,
    so insertion order is expiry order)."""

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[V] | None:
        """``(value,)`` while the entry lasts, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[key]
            return None
        return (entry[1],)

    def put(self, key: K, value: V, forever: bool = False) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (float("inf") if forever else time.monotonic() + self._ttl_s, value)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


def lookup_of(account_sid: str, participant: str) -> str:
    """How the keyring finds a participant's key: one per account and phone number (its SMS
    and WhatsApp addresses alike)."""
    material = f"{account_sid.strip()}\x1f{bare_number(participant)}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class Keyring:
    def __init__(
        self,
        pool: Pool,
        *,
        schema: str = "public",
        cache_s: float = 60.0,
        max_cached: int = 100_000,
    ) -> None:
        self._pool = pool
        self._table = f'"{schema}".{TABLE}'
        self._schema = schema
        self._by_lookup: _Expiring[str, tuple[UUID, bytes]] = _Expiring(cache_s, max_cached)
        # None: erased.
        self._by_subject: _Expiring[UUID, bytes | None] = _Expiring(cache_s, max_cached)

    async def ensure(self) -> None:
        """Create the table if it is not there (every service may be the first to start)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('parley_keyring'))")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                " lookup text PRIMARY KEY,"
                " subject uuid NOT NULL UNIQUE,"
                " key bytea NOT NULL,"
                " created_at timestamptz NOT NULL DEFAULT now())"
            )

    async def stamp(self, events: Sequence[E]) -> list[E]:
        """``events`` with the subject of their participant set (a key made now for one seen
        the first time), for a service that applies its own new event before publishing it."""
        # Each event's lookup, hashed once, for those still without a subject.
        lookups = [
            lookup_of(e.account_sid, participant_of(e))
            if personal(e) and e.subject is None and participant_of(e) != ERASED
            else None
            for e in events
        ]
        wanted = {lookup for lookup in lookups if lookup is not None}
        keys: dict[str, tuple[UUID, bytes]] = {}
        for lookup in wanted:
            cached = self._by_lookup.get(lookup)
            if cached is not None:
                keys[lookup] = cached[0]
        missing = sorted(wanted - keys.keys())
        if missing:
            keys.update(await self._keys_for(missing))
        return [
            event if lookup is None else event.model_copy(update={"subject": keys[lookup][0]})
            for event, lookup in zip(events, lookups, strict=True)
        ]

    async def seal(self, events: Sequence[Envelope]) -> list[Envelope]:
        """``events`` with personal fields sealed under their subject's key (the
        participant's, made now for one seen the first time). An event whose subject was
        erased meanwhile goes out forgotten: "[erased]" in clear, as it would read sealed."""
        stamped = await self.stamp(events)
        keys = await self._subject_keys({e.subject for e in stamped if personal(e) and e.subject})
        sealed: list[Envelope] = []
        for event in stamped:
            if personal(event) and event.subject is not None:
                key = keys.get(event.subject)
                event = seal(event, event.subject, key) if key else forgotten(event)
            sealed.append(event)
        return sealed

    async def _keys_for(self, lookups: list[str]) -> dict[str, tuple[UUID, bytes]]:
        made = [(lookup, uuid4(), new_key()) for lookup in lookups]
        async with self._pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {self._table} (lookup, subject, key) "
                "SELECT * FROM unnest($1::text[], $2::uuid[], $3::bytea[]) "
                "ON CONFLICT (lookup) DO NOTHING",
                [m[0] for m in made],
                [m[1] for m in made],
                [m[2] for m in made],
            )
            # Another process may have made some of them first: theirs are the keys.
            rows = await conn.fetch(
                f"SELECT lookup, subject, key FROM {self._table} WHERE lookup = ANY($1::text[])",
                lookups,
            )
        found: dict[str, tuple[UUID, bytes]] = {}
        for row in rows:
            found[row["lookup"]] = (row["subject"], bytes(row["key"]))
            self._by_lookup.put(row["lookup"], found[row["lookup"]])
            self._by_subject.put(row["subject"], bytes(row["key"]))
        return found

    async def open(
        self, events: Sequence[Envelope], wanted: Callable[[Envelope], bool] = lambda _: True
    ) -> list[Envelope]:
        """``events`` with their personal fields opened, "[erased]" where the key is gone;
        those not ``wanted`` are left sealed."""
        opening = [e.sealed is not None and wanted(e) for e in events]
        keys = await self._subject_keys(
            {e.subject for e, o in zip(events, opening, strict=True) if o and e.subject}
        )
        return [
            opened(e, keys.get(e.subject) if e.subject else None) if o else e
            for e, o in zip(events, opening, strict=True)
        ]

    async def _subject_keys(self, subjects: set[UUID]) -> dict[UUID, bytes | None]:
        """Each subject's key, None for one erased."""
        keys: dict[UUID, bytes | None] = {}
        missing: list[UUID] = []
        for subject in subjects:
            cached = self._by_subject.get(subject)
            if cached is None:
                missing.append(subject)
            else:
                keys[subject] = cached[0]
        if missing:
            rows = await self._pool.fetch(
                f"SELECT subject, key FROM {self._table} WHERE subject = ANY($1::uuid[])",
                missing,
            )
            found = {row["subject"]: bytes(row["key"]) for row in rows}
            for subject in missing:
                keys[subject] = found.get(subject)
                self._by_subject.put(subject, keys[subject], forever=subject not in found)
        return keys

    async def listen(self) -> None:
        """Forget deleted keys as soon as their deletion commits, anywhere: a participant
        who writes right after being erased gets a new key, not the one just deleted (which
        would make their new message unreadable). Holds one connection while it runs."""
        lost = asyncio.Event()
        async with self._pool.acquire() as conn:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(CHANNEL, self._notified)
            try:
                await lost.wait()
            finally:
                # The pool may be closing under it (a shutdown): nothing left to undo then.
                with contextlib.suppress(*KEYRING_ERRORS):
                    await conn.remove_listener(CHANNEL, self._notified)
        # Deletions made while nobody listened are not known here: start cold.
        self._by_lookup.clear()
        self._by_subject.clear()
        raise ConnectionError("the keyring's listening connection was lost")

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        subject, _, lookup = str(payload).partition(" ")
        self._by_lookup.drop(lookup)
        self._by_subject.put(UUID(subject), None, forever=True)

    def opener(self, wanted: Callable[[Envelope], bool] = lambda _: True) -> Preparer:
        """What a consumer prepares its events with (``EventConsumer``'s ``prepare``): those
        ``wanted`` opened, or "[erased]" where the key is gone."""

        async def open_wanted(events: Sequence[Envelope]) -> list[Envelope]:
            return await self.open(events, wanted)

        return open_wanted

    async def erase(
        self, conn: Connection, accounts: Sequence[str], participant: str
    ) -> dict[UUID, str]:
        """Delete the participant's keys in these accounts, in the caller's transaction (with
        the event that says so): every event sealed with them reads "[erased]" from then on,
        here at once and in other processes within ``KEYRING_CACHE_S``. Returns the subjects
        erased, each with its account."""
        lookups = {lookup_of(account, participant): account for account in accounts}
        rows = await conn.fetch(
            f"DELETE FROM {self._table} WHERE lookup = ANY($1::text[]) RETURNING lookup, subject",
            sorted(lookups),
        )
        # Every process drops the keys from its cache at the commit (``listen``).
        await conn.execute(
            "SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m",
            CHANNEL,
            [f"{row['subject']} {row['lookup']}" for row in rows],
        )
        for lookup in lookups:
            self._by_lookup.drop(lookup)
        for row in rows:
            self._by_subject.put(row["subject"], None, forever=True)
        return {row["subject"]: lookups[row["lookup"]] for row in rows}


P = TypeVar("P", bound=Publisher)


class SealingPublisher(Generic[P]):
    """A publisher that seals personal fields before ``inner`` writes events to the log."""

    def __init__(self, inner: P, keyring: Keyring) -> None:
        self.inner = inner
        self._keyring = keyring

    async def _sealed(self, events: Sequence[Envelope]) -> list[Envelope]:
        try:
            return await self._keyring.seal(events)
        except KEYRING_ERRORS as exc:
            # Never publish a personal field in clear: no key, no publish.
            raise BrokerUnavailable(f"keyring unavailable: {exc!r}") from exc

    async def publish(self, topic: str, event: Envelope) -> None:
        (sealed,) = await self._sealed([event])
        await self.inner.publish(topic, sealed)

    async def publish_many(self, events: Sequence[tuple[str, Envelope]]) -> None:
        sealed = await self._sealed([event for _, event in events])
        await self.inner.publish_many(
            [(topic, event) for (topic, _), event in zip(events, sealed, strict=True)]
        )
