"""Dashboard accounts: who may log in, with which role, over which village; passwords kept only as hashes."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache

from werkzeug.security import check_password_hash, generate_password_hash

from gateway import clock, registry
from gateway.context import Hotline
from gateway.phones import mask
from gateway.store import KEYS

log = logging.getLogger(__name__)

ROLES = ("admin", "head", "leader")
MIN_PASSWORD = 8
# Failed logins allowed per account in one window, so a password cannot be guessed by brute force.
LOGIN_TRIES = 10  # wrong passwords for one account from one address, per window (and the last)
LOGIN_TRIES_ALL = 100  # from all addresses together: a ceiling on guessing from many
LOGIN_TRIES_ADDRESS = 50  # from one address at any accounts: no spraying one password over all
DEVICE_DAYS = 30  # an address or browser that logged in is the owner's for this long
LOGIN_WINDOW = 900
PIN_DIGITS = 6  # the recording PIN (a phone's keypad; ivr.machine.PIN_DIGITS)
PIN_TRIES = 5  # wrong PINs for one account in a day, on all calls together, before it stops
EXISTING = "log in with your account (a forgotten password: hotline user passwd NAME)"
_NAME = re.compile(r"^[\w.@-]{1,40}$")


class AccountError(ValueError):
    """An account that cannot be made as asked; `reason` is a short word the callers map to words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class User:
    name: str
    role: str
    village_id: str = ""
    village: str = ""
    created_at: float = 0.0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def sees(self, village_id: str) -> bool:
        """Whether this account may see a village's tickets, ledger and notices (triage: admin only)."""
        return self.is_admin or (bool(self.village_id) and village_id == self.village_id)


def _from_hash(data: dict[str, str]) -> User:
    return User(name=data["name"], role=data.get("role", "leader"),
                village_id=data.get("village_id", ""), village=data.get("village", ""),
                created_at=float(data.get("created_at") or 0))


def get(hl: Hotline, name: str) -> User | None:
    data = hl.r.hgetall(KEYS.user(name.strip()))
    return _from_hash(data) if data else None


def list_users(hl: Hotline) -> list[User]:
    return sorted((u for n in hl.r.smembers(KEYS.users) if (u := get(hl, n))),
                  key=lambda u: (ROLES.index(u.role) if u.role in ROLES else 9, u.name))


def create(hl: Hotline, name: str, role: str, password: str, village: str | None = None) -> User:
    """Add an account; a head or leader belongs to one village (by name or id), an admin to none."""
    name = name.strip()
    if not _NAME.match(name):
        raise AccountError("bad_name")
    if role not in ROLES:
        raise AccountError("bad_role")
    if len(password) < MIN_PASSWORD:
        raise AccountError("short_password")
    vid = vname = ""
    if role != "admin":
        if not village:
            raise AccountError("needs_village")
        found = registry.find_village(hl.r, village)
        if found is None:
            raise AccountError("unknown_village")
        vid, vname = found.id, found.name
    fields = {"name": name, "role": role, "village_id": vid, "village": vname,
              "password": generate_password_hash(password), "created_at": str(clock.timestamp())}
    # HSETNX on the name claims it, so two `user add` at once cannot both win.
    if not hl.r.hsetnx(KEYS.user(name), "name", name):
        raise AccountError("exists")
    with hl.r.pipeline(transaction=True) as pipe:
        pipe.hset(KEYS.user(name), mapping=fields)  # type: ignore[arg-type]  # see store.Redis
        pipe.sadd(KEYS.users, name)
        pipe.execute()
    log.info("account %s added (%s%s)", name, role, f", {vname}" if vname else "")
    return _from_hash(fields)


def password_digest(hl: Hotline, name: str) -> str | None:
    """The stored hash (never the password): sessions are bound to it, so a new password ends them."""
    value = hl.r.hget(KEYS.user(name), "password")
    return str(value) if value else None


def set_password(hl: Hotline, name: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError("short_password")
    if not hl.r.exists(KEYS.user(name)):
        raise AccountError("unknown")
    hl.r.hset(KEYS.user(name), "password", generate_password_hash(password))


def delete(hl: Hotline, name: str) -> bool:
    phone = recorder_phone(hl, name)
    with hl.r.pipeline(transaction=True) as pipe:
        pipe.delete(KEYS.user(name))
        pipe.srem(KEYS.users, name)
        if phone:
            pipe.delete(KEYS.recorder(phone))
        removed = pipe.execute()
    return bool(removed[0])


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to check a password against when the account does not exist: the answer then
    takes as long as for a real account, so timing does not tell which names exist."""
    return generate_password_hash(secrets.token_urlsafe(16))


def new_device(hl: Hotline, name: str) -> str:
    """A token for the browser that just logged in as `name` (kept in a cookie): from it, the
    owner gets past the ceiling that guessing from many addresses puts on the account."""
    token = secrets.token_urlsafe(32)
    hl.r.set(KEYS.device(token), name, ex=DEVICE_DAYS * 86400)
    return token


def _trusted(hl: Hotline, name: str, client: str, device: str) -> bool:
    """Whether this attempt comes from where the owner logged in before (address or browser)."""
    keys = [KEYS.known_address(name, client[:64])]
    if device and len(device) <= 64:
        keys.append(KEYS.device(device))
    found = hl.r.mget(keys)
    return bool(found[0]) or (len(found) > 1 and found[1] == name)


def authenticate(hl: Hotline, name: str, password: str, client: str = "",
                 device: str = "") -> User | None:
    """The account if the password is right; None otherwise, or after too many failures.

    Failures count per account and client address (`client`, the request's remote address):
    LOGIN_TRIES from one address refuse that address alone, so a stranger guessing from
    elsewhere cannot lock the village head out. One address guessing at many accounts is
    refused after LOGIN_TRIES_ADDRESS. All addresses together get a ceiling on the account
    (LOGIN_TRIES_ALL) against guessing spread over many. The owner passes these two shared
    ceilings when coming from an address that logged in to the account in the last
    DEVICE_DAYS, or from a browser holding the `device` token (`new_device`) given at an
    earlier login.
    """
    name = name.strip()
    if not _NAME.match(name):
        return None
    window = int(clock.timestamp()) // LOGIN_WINDOW
    address = client[:64]
    counters = (f"login:{name}:{address}", f"login:{name}", f"login-from:{address}")
    keys = [KEYS.rate(counter, window) for counter in counters]
    # Counted over this window and the one before (15 to 30 minutes): a window alone would
    # let twice a ceiling through across its edge, the first half just before it.
    found = hl.r.mget([*keys, *(KEYS.rate(counter, window - 1) for counter in counters)])
    here, everywhere, from_address = (int(now or 0) + int(before or 0)
                                      for now, before in zip(found[:3], found[3:], strict=True))
    # The owner's own address or browser passes the ceilings shared with others (all addresses
    # on the account; all accounts from one address, such as an office behind one NAT).
    shared = from_address >= LOGIN_TRIES_ADDRESS or everywhere >= LOGIN_TRIES_ALL
    if here >= LOGIN_TRIES or (shared and not _trusted(hl, name, address, device)):
        log.warning("login refused for %s: too many failures", name)
        return None
    data = hl.r.hgetall(KEYS.user(name))
    if data:
        right = check_password_hash(data.get("password", ""), password)
    else:
        check_password_hash(_dummy_hash(), password)  # as long as a real account's check
        right = False
    if right:
        hl.r.set(KEYS.known_address(name, address), "1", ex=DEVICE_DAYS * 86400)
        return _from_hash(data)
    with hl.r.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, LOGIN_WINDOW * 2)  # alive through the next window, which counts it
        pipe.execute()
    log.info("failed login for %s", name)
    return None


# --- recording by phone ---------------------------------------------------------------------

def set_recorder(hl: Hotline, name: str, phone: str, pin: str) -> None:
    """Let account `name` record prompts by phone from `phone` (E.164, in the ledger; a head's
    own village's) with `pin` (six digits, kept as a hash). Replaces an earlier number."""
    user = get(hl, name)
    if user is None:
        raise AccountError("unknown")
    if user.role not in ("admin", "head"):
        raise AccountError("not_recorder")
    if len(pin) != PIN_DIGITS or not pin.isdigit() or len(set(pin)) == 1:
        raise AccountError("bad_pin")
    person = registry.person(hl.r, phone)
    if person is None:
        raise AccountError("phone_not_in_ledger")
    if not user.is_admin and person.village_id != user.village_id:
        raise AccountError("phone_of_other_village")
    taken = hl.r.get(KEYS.recorder(phone))
    if taken and taken != name:
        raise AccountError("phone_taken")
    before = hl.r.hget(KEYS.user(name), "phone")
    with hl.r.pipeline(transaction=True) as pipe:
        if before and before != phone:
            pipe.delete(KEYS.recorder(before))
        pipe.set(KEYS.recorder(phone), name)
        pipe.hset(KEYS.user(name), mapping={"phone": phone, "pin": generate_password_hash(pin)})
        pipe.execute()
    log.info("account %s records by phone from %s", name, mask(phone))


def recorder_phone(hl: Hotline, name: str) -> str:
    """The number account `name` records prompts from ("" if none)."""
    return str(hl.r.hget(KEYS.user(name), "phone") or "")


def recorder(hl: Hotline, phone: str) -> User | None:
    """The account that may record prompts by phone from `phone`, if any."""
    name = hl.r.get(KEYS.recorder(phone))
    user = get(hl, name) if name else None
    return user if user is not None and recorder_phone(hl, user.name) == phone else None


def check_pin(hl: Hotline, user: User, pin: str) -> bool:
    """Whether `pin` is the account's recording PIN; after PIN_TRIES wrong ones in a day, never
    (caller ID can be forged: the PIN is what stands between a stranger and the prompts)."""
    tries = KEYS.rate(f"pin:{user.name}", int(clock.timestamp()) // 86400)
    if int(hl.r.get(tries) or 0) >= PIN_TRIES:
        log.warning("recording PIN for %s refused: too many wrong ones today", user.name)
        return False
    digest = hl.r.hget(KEYS.user(user.name), "pin") or ""
    if digest and check_password_hash(digest, pin):
        return True
    with hl.r.pipeline(transaction=True) as pipe:
        pipe.incr(tries)
        pipe.expire(tries, 2 * 86400)
        pipe.execute()
    log.info("wrong recording PIN for %s", user.name)
    return False


def ensure_first_admin(hl: Hotline) -> str | None:
    """On a store with no account, make `admin` and return the one line telling how to log in.

    With accounts already there, the line says how to get back in without the first password."""
    if hl.r.scard(KEYS.users):
        return EXISTING
    given = hl.settings.admin_password
    password = given or secrets.token_urlsafe(9)
    try:
        create(hl, "admin", "admin", password)
    except AccountError as exc:
        if exc.reason == "short_password":
            return f"HOTLINE_ADMIN_PASSWORD is shorter than {MIN_PASSWORD} characters: no admin made"
        if exc.reason == "exists":  # another start made it a moment ago
            return EXISTING
        raise
    if given:
        return "log in as admin with the password in HOTLINE_ADMIN_PASSWORD"
    return f"log in as admin with password {password} (shown once)"
