"""The Redis store: the one module that knows key names, and how the gateway connects.

Every key lives under the prefix (default ``hl:``) so one Redis can be shared.
RQ keeps its own ``rq:`` keys beside them.

Keys (``{p}`` is the prefix):

==================================  =======  ==================================================
key                                 type     holds
==================================  =======  ==================================================
{p}person:{e164}                    hash     one registry row: name, role, village, grid, ...
{p}people                           set      every registered number
{p}people:version                   string   a new token at every ledger import (webhooks' copies reload)
{p}village:{id}                     hash     name, town
{p}villages                         hash     village name -> id
{p}village:{id}:grids               zset     grid names in registry order
{p}team:{vid}:{grid}                zset     team members' numbers, score = registry order
{p}heads:{vid}                      zset     village heads' numbers
{p}duty:{town}                      zset     the township duty list
{p}duty                             zset     everyone on any duty list (triage)
{p}residents:{vid}                  zset     residents' numbers
{p}seq:{name}                       string   counters (ticket codes, villages, messages)
{p}ticket:{code}                    hash     a ticket's fields
{p}ticket:{code}:history            list     JSON entries: at, who, what, note
{p}ticket:{code}:offered            zset     numbers the ticket was offered to, by time
{p}tickets                          zset     every ticket code by created time
{p}tickets:status:{status}          zset     codes by created time, per status
{p}tickets:village:{vid}            zset     codes by created time, per village (or "triage")
{p}tickets:caller:{e164}            zset     a caller's codes by created time
{p}tickets:intake                   list     codes of new tickets waiting for a worker to offer them
{p}tickets:assignee:{e164}          zset     codes a volunteer has taken and not closed
{p}offers:{e164}                    zset     codes offered to a volunteer and still open
{p}msg:{id}                         hash     an outbound or inbound message record
{p}msgs                             zset     message ids by created time
{p}msgs:status:{status}             zset     message ids by created time, per status
{p}msg:sid:{provider_sid}           string   provider id -> message id
{p}outbox:{e164}                    list     message ids the outbox channel "delivered"
{p}optout                           set      numbers that texted STOP
{p}seen:{kind}:{id}                 string   a webhook (or follow-up text) already handled: a claim (TTL)
{p}lock:{name}                      string   a short lock (e.g. one sender's texts, one at a time)
{p}channel:{name}                   hash     a channel's health: consecutive failures, last error, poll cursor
{p}rate:{name}:{window}             string   counters for pacing and inbound limits (TTL)
{p}sent:{sender}                    zset     message ids a sender's caps counted, by send time (a day)
{p}sent:{sender}:bulk               zset     the notices among them, by their booked turn
{p}ticket:{code}:messages           hash     purpose (offer:<round>:<e164>, remind:<at>) -> message id: claims
{p}alive:{worker}                   string   a hotline worker is alive (TTL, refreshed by its ticker)
{p}gate:{channel}                   hash     a channel in outage: probe message id, since, failures
{p}held:{channel}                   zset     message ids parked during an outage, by created time
{p}notice:{id}                      hash     a notice
{p}notices                          zset     notice ids by created time
{p}notices:village:{vid}            zset     notice ids per village
{p}notice:{id}:deliveries           hash     number -> message id (a claim: "pending:{ts}" till then)
{p}user:{name}                      hash     a dashboard account (`phone`, `pin` hash: recording by phone)
{p}recorder:{e164}                  string   the account whose phone this is (recording by phone)
{p}users                            set      account names
{p}known:{name}:{address}           string   an address the account logged in from (TTL 30 days)
{p}device:{token}                   string   a browser's login token -> account name (TTL 30 days)
{p}session:{id}                     string   a dashboard session's account (TTL 12 hours, never extended)
{p}call:{sid}                       hash     voice call state between webhook steps
{p}sim:{e164}                       list     the phone simulator's texts to and from a number (TTL)
==================================  =======  ==================================================
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import redis
from redis.exceptions import LockError

from gateway import clock
from gateway.lua import Script
from gateway.settings import Settings

if TYPE_CHECKING:
    # Typed by types-redis, whose clients are generic in what replies decode to (redis-py's
    # own annotations say bytes | str for every reply): the domain's client decodes to str,
    # RQ's (pickled payloads) does not. Its hset takes a Mapping[str | bytes, ...], and a
    # Mapping's key type is invariant, so a dict[str, str] passed by name needs an ignore.
    Redis = redis.Redis[str]
    Pipeline = redis.client.Pipeline[str]
    BytesRedis = redis.Redis[bytes]
else:
    Redis = BytesRedis = redis.Redis
    Pipeline = redis.client.Pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Keys:
    """Builds every key name; nothing else spells one out."""

    prefix: str = "hl:"

    def person(self, phone: str) -> str:
        return f"{self.prefix}person:{phone}"

    @property
    def people(self) -> str:
        return f"{self.prefix}people"

    @property
    def people_version(self) -> str:
        return f"{self.prefix}people:version"

    def village(self, vid: str) -> str:
        return f"{self.prefix}village:{vid}"

    @property
    def villages(self) -> str:
        return f"{self.prefix}villages"

    def grids(self, vid: str) -> str:
        return f"{self.prefix}village:{vid}:grids"

    def team(self, vid: str, grid: str) -> str:
        return f"{self.prefix}team:{vid}:{grid}"

    def heads(self, vid: str) -> str:
        return f"{self.prefix}heads:{vid}"

    def duty(self, town: str) -> str:
        return f"{self.prefix}duty:{town}"

    @property
    def duty_all(self) -> str:
        return f"{self.prefix}duty"

    def residents(self, vid: str) -> str:
        return f"{self.prefix}residents:{vid}"

    def seq(self, name: str) -> str:
        return f"{self.prefix}seq:{name}"

    def ticket(self, code: str) -> str:
        return f"{self.prefix}ticket:{code}"

    def history(self, code: str) -> str:
        return f"{self.prefix}ticket:{code}:history"

    def offered(self, code: str) -> str:
        return f"{self.prefix}ticket:{code}:offered"

    @property
    def tickets(self) -> str:
        return f"{self.prefix}tickets"

    def tickets_by_status(self, status: str) -> str:
        return f"{self.prefix}tickets:status:{status}"

    def tickets_by_village(self, vid: str) -> str:
        return f"{self.prefix}tickets:village:{vid}"

    def tickets_by_caller(self, phone: str) -> str:
        return f"{self.prefix}tickets:caller:{phone}"

    @property
    def intake(self) -> str:
        return f"{self.prefix}tickets:intake"

    def tickets_by_assignee(self, phone: str) -> str:
        return f"{self.prefix}tickets:assignee:{phone}"

    def offers(self, phone: str) -> str:
        return f"{self.prefix}offers:{phone}"

    def message(self, mid: str) -> str:
        return f"{self.prefix}msg:{mid}"

    @property
    def messages(self) -> str:
        return f"{self.prefix}msgs"

    def messages_by_status(self, status: str) -> str:
        return f"{self.prefix}msgs:status:{status}"

    def message_by_sid(self, sid: str) -> str:
        return f"{self.prefix}msg:sid:{sid}"

    def outbox(self, phone: str) -> str:
        return f"{self.prefix}outbox:{phone}"

    @property
    def optout(self) -> str:
        return f"{self.prefix}optout"

    def seen(self, kind: str, ident: str) -> str:
        return f"{self.prefix}seen:{kind}:{ident}"

    def rate(self, name: str, window: int | str) -> str:
        return f"{self.prefix}rate:{name}:{window}"

    def lock(self, name: str) -> str:
        return f"{self.prefix}lock:{name}"

    def ticket_messages(self, code: str) -> str:
        return f"{self.prefix}ticket:{code}:messages"

    def alive(self, worker: str) -> str:
        return f"{self.prefix}alive:{worker}"

    def gate(self, channel: str) -> str:
        return f"{self.prefix}gate:{channel}"

    def held(self, channel: str) -> str:
        return f"{self.prefix}held:{channel}"

    def channel(self, name: str) -> str:
        return f"{self.prefix}channel:{name}"

    def sent(self, sender: str) -> str:
        """When each send a sender's caps count went (caps.py)."""
        return f"{self.prefix}sent:{sender}"

    def bulk(self, sender: str) -> str:
        """Which of a sender's booked turns are notices' (an offer may take one: caps.py)."""
        return f"{self.prefix}sent:{sender}:bulk"

    def parts(self, mid: str) -> str:
        """A long text's parts reported delivered so far (the phone reports each part)."""
        return f"{self.prefix}parts:{mid}"

    def notice(self, nid: str) -> str:
        return f"{self.prefix}notice:{nid}"

    @property
    def notices(self) -> str:
        return f"{self.prefix}notices"

    def notices_by_village(self, vid: str) -> str:
        return f"{self.prefix}notices:village:{vid}"

    def deliveries(self, nid: str) -> str:
        return f"{self.prefix}notice:{nid}:deliveries"

    def user(self, name: str) -> str:
        return f"{self.prefix}user:{name}"

    def recorder(self, phone: str) -> str:
        return f"{self.prefix}recorder:{phone}"

    @property
    def users(self) -> str:
        return f"{self.prefix}users"

    def session(self, sid: str) -> str:
        return f"{self.prefix}session:{sid}"

    def known_address(self, name: str, address: str) -> str:
        return f"{self.prefix}known:{name}:{address}"

    def device(self, token: str) -> str:
        return f"{self.prefix}device:{token}"

    def call(self, sid: str) -> str:
        return f"{self.prefix}call:{sid}"

    def sim(self, phone: str) -> str:
        return f"{self.prefix}sim:{phone}"


KEYS = Keys()


def _sentinel_master(url: str, decode: bool) -> redis.Redis[Any] | None:
    """For ``redis+sentinel://h1:26379,h2:26379/mymaster/0``, the current master as Sentinel
    names it (so a failover needs no restart); None for any other URL."""
    if not url.startswith("redis+sentinel://"):
        return None
    from urllib.parse import urlsplit

    from redis.sentinel import Sentinel

    parts = urlsplit(url)
    hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]) if ":" in h else 26379)
             for h in parts.netloc.rsplit("@", 1)[-1].split(",")]
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a sentinel URL names its master: redis+sentinel://host:26379/mymaster")
    sentinel = Sentinel(
        hosts, socket_timeout=2, password=parts.password,
        sentinel_kwargs={"password": parts.password} if parts.password else None)
    master: redis.Redis[Any] = sentinel.master_for(
        path[0], db=int(path[1]) if len(path) > 1 else 0, decode_responses=decode)
    return master


# A Redis that is away must fail fast (the webhook then spools): a short connect timeout for
# both clients; RQ's blocking pops need no read timeout, so only the domain's gets one.
CONNECT_TIMEOUT = 2
READ_TIMEOUT = 5
HEALTH_CHECK = 30


def connect(url: str) -> Redis:
    """A client that returns str, not bytes; RQ gets its own bytes client (see `rq_connection`)."""
    return _sentinel_master(url, decode=True) or redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=READ_TIMEOUT, health_check_interval=HEALTH_CHECK)


def rq_connection(url: str) -> BytesRedis:
    """RQ stores pickled payloads, so its client must not decode responses."""
    return _sentinel_master(url, decode=False) or redis.Redis.from_url(
        url, decode_responses=False, socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=HEALTH_CHECK)


def redis_url(settings: Settings) -> str:
    """The URL to use: REDIS_URL, else the embedded server's socket (which must be started)."""
    if settings.redis_url:
        return settings.redis_url
    from gateway.embedded import EmbeddedRedis

    return EmbeddedRedis(settings.data_dir).url


SEEN_TTL = 7 * 86400  # seconds a provider's id is remembered: far beyond any provider's retries
PENDING = "pending:"  # a claim's value until it is settled: "pending:<time claimed>"
_CLAIM = Script(__name__, "claim")


def claim(r: Redis, key: str, field: str = "", *, lease: float | None = None,
          ttl: int | None = None) -> bool:
    """Claim a purpose once: True for the one caller that may act on it (store.claim.lib.lua).

    The one "do this once" of the gateway: a webhook's provider id (the key `KEYS.seen(...)`
    itself, for `ttl` seconds), a text about a ticket (a field of its message map), a notice's
    recipient (a field of its delivery hash). The claim holds PENDING until `settle` writes its
    outcome; a pending claim older than `lease` seconds is from a claimant that died and may be
    taken (no lease: never); `unclaim` gives it up when acting failed, so a retry acts.
    """
    now = clock.timestamp()
    return bool(_CLAIM(r, key=key, field=field, now=repr(now),
                       stale_before="" if lease is None else repr(now - lease),
                       ttl="" if ttl is None else ttl))


def settle(r: Redis, key: str, field: str, outcome: str) -> None:
    """What a claim in a hash came to (a message id): it is done with, for good."""
    r.hset(key, field, outcome)


def unclaim(r: Redis, key: str, field: str = "") -> None:
    """Give a claim up (acting on it failed), so the provider's or the job's retry acts."""
    if field:
        r.hdel(key, field)
    else:
        r.delete(key)


def is_pending(value: str) -> bool:
    """Whether a claim's value is still a claim, not yet its outcome."""
    return value.startswith(PENDING)


class Busy(RuntimeError):
    """A lock stayed held elsewhere for as long as the caller would wait (policy "raise");
    raised in a job, RQ's retry comes back for it shortly."""


@contextmanager
def locked(r: Redis, name: str, *, ttl: float, wait: float,
           busy: Literal["proceed", "skip", "raise"]) -> Iterator[bool]:
    """Hold the short lock `name` (``{p}lock:{name}``) for at most `ttl` s, waiting up to `wait` s.

    The one lock of the gateway. `busy` says what a caller does when it stays held: "proceed"
    (carry on without it), "skip" (do nothing: someone else is on it), both yielding False, or
    "raise" (Busy). Yields True when held; one that expired meanwhile is not released.
    """
    lock = r.lock(KEYS.lock(name), timeout=ttl, blocking=wait > 0,
                  blocking_timeout=wait if wait > 0 else None)
    held = bool(lock.acquire())
    if not held and busy == "raise":
        raise Busy(f"{name} is busy")
    try:
        yield held
    finally:
        if held:
            try:
                lock.release()
            except LockError:  # expired while we worked: whoever came next simply went ahead
                log.warning("lock %s expired before release", name)
