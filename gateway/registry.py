"""The ledger (台账): villages, grids, teams and people, kept in Redis and found by phone number."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gateway.store import KEYS, Redis

ROLES = ("resident", "volunteer", "grid_worker", "leader", "head", "duty")
TEAM_ROLES = ("volunteer", "grid_worker", "leader")
GROUPS = ("elderly", "disabled", "alone", "home_care", "low_income", "extreme_poverty",
          "left_behind")


@dataclass(frozen=True)
class Person:
    """One row of the ledger."""

    phone: str
    name: str
    role: str
    village: str = ""
    village_id: str = ""
    town: str = ""
    grid: str = ""
    groups: tuple[str, ...] = ()
    address: str = ""
    notes: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    language: str = ""
    order: int = 0

    @property
    def in_team(self) -> bool:
        return self.role in TEAM_ROLES

    @property
    def can_lead(self) -> bool:
        """Leaders, heads and the duty list may assign tickets and send notices."""
        return self.role in ("leader", "head", "duty")

    def to_hash(self) -> dict[str, str]:
        data = asdict(self)
        data["groups"] = ";".join(self.groups)
        data["order"] = str(self.order)
        return {k: str(v) for k, v in data.items()}

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Person:
        return cls(
            phone=data["phone"], name=data.get("name", ""), role=data.get("role", "resident"),
            village=data.get("village", ""), village_id=data.get("village_id", ""),
            town=data.get("town", ""), grid=data.get("grid", ""),
            groups=tuple(g for g in data.get("groups", "").split(";") if g),
            address=data.get("address", ""), notes=data.get("notes", ""),
            contact_name=data.get("contact_name", ""),
            contact_phone=data.get("contact_phone", ""),
            language=data.get("language", ""), order=int(data.get("order") or 0),
        )


@dataclass(frozen=True)
class Village:
    id: str
    name: str
    town: str = ""
    grids: tuple[str, ...] = field(default=())


def person(r: Redis, phone: str) -> Person | None:
    data = r.hgetall(KEYS.person(phone))
    return Person.from_hash(data) if data else None


def people(r: Redis, phones: list[str]) -> list[Person]:
    """The people for `phones`, in that order, skipping numbers no longer registered."""
    pipe = r.pipeline(transaction=False)
    for phone in phones:
        pipe.hgetall(KEYS.person(phone))
    return [Person.from_hash(d) for d in pipe.execute() if d]


def team(r: Redis, village_id: str, grid: str) -> list[Person]:
    """The grid's team in registry order."""
    return people(r, list(r.zrange(KEYS.team(village_id, grid), 0, -1)))


def heads(r: Redis, village_id: str) -> list[Person]:
    return people(r, list(r.zrange(KEYS.heads(village_id), 0, -1)))


def duty(r: Redis, town: str) -> list[Person]:
    return people(r, list(r.zrange(KEYS.duty(town), 0, -1)))


def all_duty(r: Redis) -> list[Person]:
    """Everyone on any township duty list: who sees tickets from unknown callers."""
    return people(r, list(r.zrange(KEYS.duty_all, 0, -1)))


def residents(r: Redis, village_id: str) -> list[Person]:
    return people(r, list(r.zrange(KEYS.residents(village_id), 0, -1)))


def village_team(r: Redis, village_id: str) -> list[Person]:
    """Every team member of every grid of a village, grid by grid."""
    out: list[Person] = []
    for grid in r.zrange(KEYS.grids(village_id), 0, -1):
        out.extend(team(r, village_id, grid))
    return out


def villages(r: Redis) -> list[Village]:
    ids = sorted(r.hvals(KEYS.villages), key=lambda v: int(v[1:]) if v[1:].isdigit() else 0)
    return [v for vid in ids if (v := village(r, vid))]


def village(r: Redis, vid: str) -> Village | None:
    data = r.hgetall(KEYS.village(vid))
    if not data:
        return None
    grids = tuple(r.zrange(KEYS.grids(vid), 0, -1))
    return Village(id=vid, name=data.get("name", ""), town=data.get("town", ""), grids=grids)


def find_village(r: Redis, name_or_id: str) -> Village | None:
    """A village by its name as written in the registry, or by its id."""
    vid = r.hget(KEYS.villages, name_or_id.strip())
    return village(r, vid or name_or_id.strip())


def is_empty(r: Redis) -> bool:
    return not r.exists(KEYS.people)


def find_member(r: Redis, village_id: str, who: str, region: str) -> Person | None:
    """A village's team member or head by name or by phone (for `派 1042 孙玉梅`)."""
    from gateway.phones import try_normalise

    who = who.strip()
    phone = try_normalise(who, region)
    candidates = village_team(r, village_id) + heads(r, village_id)
    for p in candidates:
        if (phone and p.phone == phone) or p.name == who:
            return p
    return None
