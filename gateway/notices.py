"""Notices: what a village head tells the village, sent by SMS and read over the loudspeaker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gateway import clock, jobs, messages, registry, texts, tickets
from gateway.context import Hotline
from gateway.phones import is_mobile, mask, try_normalise
from gateway.registry import Person
from gateway.store import KEYS, claim, is_pending, settle

log = logging.getLogger(__name__)

AUDIENCES = ("team", "residents", "all", "none")
KINDS = ("notice", "help")
TITLE_MAX = 20  # the contract's rule for a title taken from an SMS notice's first sentence
TITLE_LIMIT = 60  # a title typed by hand
BODY_LIMIT = 2000  # about four minutes read aloud; longer belongs on paper, not a loudspeaker
# A delivery claimed but never turned into a message (the fan-out died in between) may be
# claimed again after this many seconds, so a re-run finishes the job without doubling anyone.
CLAIM_LEASE = 300


class NoticeError(ValueError):
    """A notice that cannot be made as asked (unknown village, empty body, bad audience)."""


@dataclass(frozen=True)
class Notice:
    id: str
    village_id: str
    village: str  # the place named on the notice: the village, or the town for a town notice
    title: str
    body: str
    author: str
    audience: str
    created_at: float
    sent_at: float | None = None
    town: str = ""
    village_ids: tuple[str, ...] = ()
    kind: str = "notice"
    ticket: str = ""
    language: str = ""

    @property
    def for_town(self) -> bool:
        return not self.village_id and bool(self.town)

    @classmethod
    def from_hash(cls, d: dict[str, str]) -> Notice:
        return cls(
            id=d["id"], village_id=d.get("village_id", ""), village=d.get("village", ""),
            title=d.get("title", ""), body=d.get("body", ""), author=d.get("author", ""),
            audience=d.get("audience", "none"), created_at=float(d.get("created_at") or 0),
            sent_at=float(d["sent_at"]) if d.get("sent_at") else None, town=d.get("town", ""),
            village_ids=tuple(v for v in d.get("village_ids", d.get("village_id", "")).split(",")
                              if v),
            kind=d.get("kind", "notice"), ticket=d.get("ticket", ""),
            language=d.get("language", ""),
        )

    def to_json(self, hl: Hotline) -> dict[str, Any]:
        return {
            "id": self.id, "village": self.village, "town": self.town or None,
            "scope": "town" if self.for_town else "village", "title": self.title,
            "body": self.body, "author": self.author, "audience": self.audience,
            "kind": self.kind, "ticket": self.ticket or None,
            "language": self.language or hl.settings.language,
            "created_at": clock.local_iso(self.created_at, hl.settings.tz),
            "sent_at": clock.local_iso(self.sent_at, hl.settings.tz),
        }


@dataclass(frozen=True)
class Fanout:
    """What one sending did: messages queued, numbers that opted out, people without a mobile,
    and people who already had this notice."""

    queued: int = 0
    optedout: int = 0
    nomobile: int = 0
    already: int = 0


@dataclass(frozen=True)
class Delivery:
    """One person's copy of a notice, with the status of its message record."""

    phone: str
    name: str
    role: str
    message_id: str
    status: str
    error: str = ""


def title_of(body: str) -> str:
    """The first sentence, up to TITLE_MAX characters (the contract's rule for SMS notices)."""
    text = body.strip()
    for i, ch in enumerate(text):
        if ch in "。！？!?.；;\n":
            text = text[:i]
            break
    return text.strip()[:TITLE_MAX]


def _check(body: str, title: str, audience: str) -> tuple[str, str]:
    if audience not in AUDIENCES:
        raise NoticeError(f"audience must be one of {', '.join(AUDIENCES)}")
    body = body.strip()
    if not body:
        raise NoticeError("the notice has no text")
    if len(body) > BODY_LIMIT:
        raise NoticeError(f"the text is {len(body)} characters; at most {BODY_LIMIT}")
    title = " ".join(title.split())
    if len(title) > TITLE_LIMIT:
        raise NoticeError(f"the title is {len(title)} characters; at most {TITLE_LIMIT}")
    return body, title or title_of(body)


def _store(hl: Hotline, fields: dict[str, str], village_ids: list[str]) -> Notice:
    now = clock.timestamp()
    nid = str(hl.r.incr(KEYS.seq("notice")))
    fields = {**fields, "id": nid, "created_at": str(now), "village_ids": ",".join(village_ids)}
    with hl.r.pipeline(transaction=True) as pipe:
        pipe.hset(KEYS.notice(nid), mapping=fields)  # type: ignore[arg-type]  # see store.Redis
        pipe.zadd(KEYS.notices, {nid: now})
        for vid in village_ids:
            pipe.zadd(KEYS.notices_by_village(vid), {nid: now})
        pipe.execute()
    notice = Notice.from_hash(fields)
    if notice.audience != "none":
        queue_send(hl, nid, notice.audience)
    log.info("notice %s for %s (%s)", nid, notice.village, notice.audience)
    return notice


def create(hl: Hotline, village_id: str, body: str, *, title: str = "", author: str = "",
           audience: str = "none", language: str | None = None, kind: str = "notice",
           ticket: str = "") -> Notice:
    """Store a notice for one village; with an audience other than `none`, queue its sending."""
    body, title = _check(body, title, audience)
    village = registry.village(hl.r, village_id)
    if village is None:
        raise NoticeError(f"no village {village_id!r}")
    fields = {"village_id": village.id, "village": village.name, "town": village.town,
              "title": title, "body": body, "author": author, "audience": audience,
              "kind": kind if kind in KINDS else "notice", "ticket": ticket,
              "language": language or hl.settings.language}
    return _store(hl, fields, [village.id])


def create_for_town(hl: Hotline, town: str, body: str, *, title: str = "", author: str = "",
                    audience: str = "none", language: str | None = None) -> Notice:
    """One notice for every village of a town (a township office's notice), sent and listed
    in each of them, signed by the town."""
    body, title = _check(body, title, audience)
    town = town.strip()
    members = [v for v in registry.villages(hl.r) if v.town == town]
    if not town or not members:
        known = sorted({v.town for v in registry.villages(hl.r) if v.town})
        raise NoticeError(f"no town {town!r} (known: {', '.join(known) or 'none yet'})")
    fields = {"village_id": "", "village": town, "town": town, "title": title, "body": body,
              "author": author, "audience": audience, "kind": "notice", "ticket": "",
              "language": language or hl.settings.language}
    return _store(hl, fields, [v.id for v in members])


def from_ticket(hl: Hotline, code: str, *, need: str = "", contact: str = "", author: str = "",
                audience: str = "none", language: str | None = None) -> Notice:
    """A call for help made from a ticket ("spare fever medicine needed in 第三网格, call the
    leader at ..."). Built only from the grid, the category and the contact person: the
    resident's name, number, address and own words never enter it; what `need` says is
    written by a person, who may name someone on purpose."""
    ticket = tickets.get(hl, code)
    if ticket is None:
        raise NoticeError(f"no ticket #{code.strip().lstrip('#')}")
    if ticket.is_triage:
        raise NoticeError(f"ticket #{ticket.code} has no village yet")
    helper = _contact(hl, ticket.village_id, ticket.grid, contact)
    lang = language or hl.settings.language
    region = hl.settings.default_region
    context: dict[str, Any] = {
        "grid": ticket.grid, "category": ticket.category, "need": " ".join(need.split()),
        "contact_name": helper.name, "contact_role": helper.role,
        "contact_phone": _national(helper.phone, region),
    }
    body = texts.render(hl.settings, "notice", "help", language=lang, village=ticket.village,
                        **context)
    title = texts.render(hl.settings, "notice", "help_title", language=lang,
                         village=ticket.village, **context)
    notice = create(hl, ticket.village_id, body, title=title[:TITLE_LIMIT], author=author,
                    audience=audience, language=lang, kind="help", ticket=ticket.code)
    tickets.note(hl, ticket.code, author or "system", "help_notice", notice.id)
    return notice


def _contact(hl: Hotline, village_id: str, grid: str, who: str) -> Person:
    """Who helpers should call: the one named, else the grid's leader (or first member), else a
    village head."""
    region = hl.settings.default_region
    if who.strip():
        found = registry.find_member(hl.r, village_id, who, region)
        if found:
            return found
        phone = try_normalise(who, region)
        if phone is None:
            raise NoticeError(f"no team member or head called {who.strip()!r} in the village")
        return registry.person(hl.r, phone) or Person(phone=phone, name="", role="")
    team = registry.team(hl.r, village_id, grid) if grid else []
    for role in ("leader", "grid_worker", "volunteer"):
        for p in team:
            if p.role == role:
                return p
    heads = registry.heads(hl.r, village_id)
    if heads:
        return heads[0]
    raise NoticeError("the grid has no team and the village no head to name as contact")


def _national(e164: str, region: str) -> str:
    import phonenumbers

    try:
        number = phonenumbers.parse(e164, region)
    except phonenumbers.NumberParseException:
        return e164
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))


def get(hl: Hotline, nid: str) -> Notice | None:
    nid = nid.strip().lstrip("#")
    if not nid.isdigit():
        return None
    data = hl.r.hgetall(KEYS.notice(nid))
    return Notice.from_hash(data) if data else None


def list_notices(hl: Hotline, village_id: str | None = None, limit: int = 100) -> list[Notice]:
    key = KEYS.notices_by_village(village_id) if village_id else KEYS.notices
    return [n for nid in hl.r.zrevrange(key, 0, limit - 1) if (n := get(hl, nid))]


def audience_of(hl: Hotline, notice: Notice, audience: str | None = None) -> list[Person]:
    """Who receives the notice by SMS: the teams and heads of its villages (and the town's duty
    list for a town notice), its residents, or both; each person once, and never the resident
    whose ticket a call for help was made from."""
    audience = audience or notice.audience
    people: list[Person] = []
    for vid in notice.village_ids:
        if audience in ("team", "all"):
            people += registry.village_team(hl.r, vid)
            people += registry.heads(hl.r, vid)
        if audience in ("residents", "all"):
            people += registry.residents(hl.r, vid)
    if notice.for_town and audience in ("team", "all"):
        people += registry.duty(hl.r, notice.town)
    # A call for help is for the neighbours, not for the resident who asked.
    asker = tickets.get(hl, notice.ticket) if notice.kind == "help" and notice.ticket else None
    unique: dict[str, Person] = {}
    for p in people:
        if asker is None or p.phone != asker.caller:
            unique.setdefault(p.phone, p)
    return list(unique.values())


def queue_send(hl: Hotline, nid: str, audience: str | None = None) -> None:
    """Hand the fan-out to the workers (`workers.notices.send_notice`)."""
    if audience is not None and audience not in AUDIENCES:
        raise NoticeError(f"audience must be one of {', '.join(AUDIENCES)}")
    if audience == "none":
        return
    jobs.notice(hl, nid, audience)


def send(hl: Hotline, nid: str, audience: str | None = None) -> int:
    """Fan the notice out now (see `fan_out`); the number of SMS queued."""
    return fan_out(hl, nid, audience).queued


def fan_out(hl: Hotline, nid: str, audience: str | None = None) -> Fanout:
    """Queue one SMS per recipient with a mobile, each its own send job (so pacing and opt-outs
    apply there). Safe to run twice, or at once from two workers: each person is claimed in the
    delivery hash before their message is made, so nobody gets the notice twice, whichever
    audiences it is sent to."""
    notice = get(hl, nid)
    if notice is None:
        log.warning("notice %s: no such notice", nid)
        return Fanout()
    key = KEYS.deliveries(notice.id)
    queued = optedout = nomobile = already = 0
    for person in audience_of(hl, notice, audience):
        if not is_mobile(person.phone):
            nomobile += 1  # a landline hears the loudspeaker instead
            continue
        if not claim(hl.r, key, person.phone, lease=CLAIM_LEASE):
            already += 1
            continue
        body = texts.sms(hl.settings, "notice",
                         language=person.language or notice.language or None,
                         village=person.village, notice=notice)
        message = messages.queue_sms(hl, person.phone, body, kind="notice", notice=notice.id)
        settle(hl.r, key, person.phone, message.id)
        if message.status == "optedout":
            optedout += 1
        else:
            queued += 1
    hl.r.hset(KEYS.notice(notice.id), mapping={"sent_at": str(clock.timestamp())})
    log.info("notice %s sent to %s: %d queued, %d opted out, %d without a mobile, %d already",
             notice.id, audience or notice.audience, queued, optedout, nomobile, already)
    return Fanout(queued=queued, optedout=optedout, nomobile=nomobile, already=already)


def deliveries(hl: Hotline, nid: str) -> dict[str, str]:
    """Number -> message id for every person the notice was sent to."""
    return dict(hl.r.hgetall(KEYS.deliveries(nid)))


def delivery_report(hl: Hotline, nid: str) -> list[Delivery]:
    """Each recipient with the current status of their message (delivered, failed, ...)."""
    rows: list[Delivery] = []
    for phone, mid in sorted(deliveries(hl, nid).items()):
        person = registry.person(hl.r, phone)
        message = None if is_pending(mid) else messages.get(hl, mid)
        rows.append(Delivery(
            phone=phone, name=person.name if person else "", role=person.role if person else "",
            message_id="" if message is None else mid,
            status=message.status if message else "pending", error=message.error if message else ""))
    return rows


def delivery_counts(hl: Hotline, nid: str) -> dict[str, int]:
    """How many recipients are at each message status."""
    counts: dict[str, int] = {}
    for row in delivery_report(hl, nid):
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def author_label(hl: Hotline, notice: Notice) -> str:
    """The author as people know them: a registered number shows as the person's name."""
    person = registry.person(hl.r, notice.author) if notice.author.startswith("+") else None
    return person.name if person else (mask(notice.author) if notice.author.startswith("+")
                                       else notice.author)
