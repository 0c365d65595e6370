"""Notices: what a village head tells the village, sent by SMS and read over the loudspeaker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gateway import clock, messages, registry
from gateway.context import Hotline
from gateway.registry import Person
from gateway.store import KEYS

log = logging.getLogger(__name__)

AUDIENCES = ("team", "residents", "all", "none")
TITLE_MAX = 20


class NoticeError(ValueError):
    """A notice that cannot be made as asked (unknown village, empty body, bad audience)."""


@dataclass(frozen=True)
class Notice:
    id: str
    village_id: str
    village: str
    title: str
    body: str
    author: str
    audience: str
    created_at: float
    sent_at: float | None = None

    @classmethod
    def from_hash(cls, d: dict[str, str]) -> Notice:
        return cls(
            id=d["id"], village_id=d.get("village_id", ""), village=d.get("village", ""),
            title=d.get("title", ""), body=d.get("body", ""), author=d.get("author", ""),
            audience=d.get("audience", "none"), created_at=float(d.get("created_at") or 0),
            sent_at=float(d["sent_at"]) if d.get("sent_at") else None,
        )

    def to_json(self, hl: Hotline) -> dict[str, Any]:
        return {
            "id": self.id, "village": self.village, "title": self.title, "body": self.body,
            "author": self.author, "audience": self.audience,
            "created_at": clock.local_iso(self.created_at, hl.settings.tz),
            "sent_at": clock.local_iso(self.sent_at, hl.settings.tz),
        }


def title_of(body: str) -> str:
    """The first sentence, up to TITLE_MAX characters (the contract's rule for SMS notices)."""
    text = body.strip()
    for i, ch in enumerate(text):
        if ch in "。！？!?.；;\n":
            text = text[:i]
            break
    return text.strip()[:TITLE_MAX]


def create(hl: Hotline, village_id: str, body: str, *, title: str = "", author: str = "",
           audience: str = "none") -> Notice:
    """Store a notice; with an audience other than `none`, queue its sending."""
    if audience not in AUDIENCES:
        raise NoticeError(f"audience must be one of {', '.join(AUDIENCES)}")
    body = body.strip()
    if not body:
        raise NoticeError("the notice has no text")
    village = registry.village(hl.r, village_id)
    if village is None:
        raise NoticeError(f"no village {village_id!r}")
    now = clock.timestamp()
    nid = str(hl.r.incr(KEYS.seq("notice")))
    fields = {"id": nid, "village_id": village.id, "village": village.name,
              "title": (title.strip() or title_of(body))[:60], "body": body, "author": author,
              "audience": audience, "created_at": str(now)}
    with hl.r.pipeline(transaction=True) as pipe:
        pipe.hset(KEYS.notice(nid), mapping=fields)
        pipe.zadd(KEYS.notices, {nid: now})
        pipe.zadd(KEYS.notices_by_village(village.id), {nid: now})
        pipe.execute()
    if audience != "none":
        hl.enqueue("workers.notices.send_notice", nid, job_id=f"notice-{nid}")
    log.info("notice %s for %s (%s)", nid, village.name, audience)
    return Notice.from_hash(fields)


def get(hl: Hotline, nid: str) -> Notice | None:
    data = hl.r.hgetall(KEYS.notice(nid.strip()))
    return Notice.from_hash(data) if data else None


def list_notices(hl: Hotline, village_id: str | None = None, limit: int = 100) -> list[Notice]:
    key = KEYS.notices_by_village(village_id) if village_id else KEYS.notices
    return [n for nid in hl.r.zrevrange(key, 0, limit - 1) if (n := get(hl, nid))]


def audience_of(hl: Hotline, notice: Notice, audience: str | None = None) -> list[Person]:
    """Who receives the notice by SMS: the village's teams, its residents, or both."""
    audience = audience or notice.audience
    people: list[Person] = []
    if audience in ("team", "all"):
        people += registry.village_team(hl.r, notice.village_id)
        people += registry.heads(hl.r, notice.village_id)
    if audience in ("residents", "all"):
        people += registry.residents(hl.r, notice.village_id)
    unique: dict[str, Person] = {}
    for p in people:
        unique.setdefault(p.phone, p)
    return list(unique.values())


def send(hl: Hotline, nid: str, audience: str | None = None) -> int:
    """Queue one SMS per recipient who has a mobile; safe to run twice (one per person)."""
    from gateway import texts
    from gateway.phones import is_mobile

    notice = get(hl, nid)
    if notice is None:
        return 0
    sent = 0
    for person in audience_of(hl, notice, audience):
        if not is_mobile(person.phone):
            continue
        # HSETNX claims the person for this notice, so a re-run sends nobody twice.
        if not hl.r.hsetnx(KEYS.deliveries(nid), person.phone, "pending"):
            continue
        body = texts.sms(hl.settings, "notice", language=person.language or None,
                         village=notice.village, notice=notice)
        message = messages.queue_sms(hl, person.phone, body, kind="notice", notice=nid)
        hl.r.hset(KEYS.deliveries(nid), person.phone, message.id)
        sent += 1
    hl.r.hset(KEYS.notice(nid), "sent_at", str(clock.timestamp()))
    return sent


def deliveries(hl: Hotline, nid: str) -> dict[str, str]:
    """Number -> message id for every person the notice was sent to."""
    return dict(hl.r.hgetall(KEYS.deliveries(nid)))
