"""Sending one message record: the attempt is recorded before the call, the provider's id after it.

Between a queued message and the pool's senders (HOTLINE_CHANNELS_FILE, gateway.senders) stand:

- routing (gateway.routing): the recipient's village's sender first, a reply back through the
  sender its text came in by, then the others, standby last; passing over a sender in outage,
  one in its quiet hours (notices), one whose caps (gateway.caps) have no room. A message no
  sender can take now waits for the soonest room, its record saying why (`waiting`).
- each sender's outage state (`Gate`, one hash in Redis): after a transient failure (refused,
  timed out, 429, 5xx) the sender is in outage, with the message that failed as its probe.
  While other senders are up, the probe goes on through them and the sender is probed again
  by the next message routed to it once a backoff has passed (HOTLINE_RETRY_FIRST, doubling
  up to HOTLINE_RETRY_MAX); when every sender is in outage the probe retries on the retry
  policy (RQ's retries) and the other messages park, by creation time, without calling
  anyone. The first success through a sender ends its outage and releases every parked
  message, oldest first. Nothing is dropped meanwhile.
- its turn: a slot per sender at its rate, booked with its caps (caps.book); a job whose turn
  is more than HOLD seconds away re-enqueues itself for that turn instead of occupying the
  worker. Notices queue at the end of a sender's line and leave part of each cap; an offer,
  a reply or a code goes ahead of them, taking a notice's turn if need be (that notice is
  booked again at the end and its job learns so when it claims the turn).
- a lookup, before any second attempt: if the provider already has the message (the worker
  died or timed out while the provider was answering), its id is recorded and nothing is
  sent again.

An offer job makes the first attempt at its own texts in-process (send_inline), which halves
the jobs per ticket; whatever cannot go at once (its turn is later, every sender is down,
the provider failed) becomes a queued send job as above.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from rq import get_current_job

from gateway import caps, clock, jobs, messages, pacing, routing
from gateway.channels import Channel, Receipt, TransportError, channel_for
from gateway.channels import state as channel_state
from gateway.context import Hotline
from gateway.jobs import job_alive
from gateway.messages import Message
from gateway.outage import CLOSED, PROBE, Gate, backoff, in_outage
from gateway.phones import mask
from gateway.routing import Recipient
from gateway.senders import Sender
from gateway.settings import Settings
from gateway.store import KEYS
from workers.runtime import hotline

log = logging.getLogger(__name__)

PENDING = ("queued", "sending")
UNPACED = ("outbox",)  # the local outbox has no provider to overwhelm
# Seconds a job may wait in the worker for its turn; a longer wait is re-enqueued. Short: a
# worker asleep on one sender's turn sends nothing through the others of the pool.
HOLD = 0.05
# Error codes after which the provider may have the message all the same.
UNKNOWN = ("timeout", "unreachable", "client")
def enqueue_send(hl: Hotline, mid: str, *, slot: float | None = None,
                 at: float | None = None) -> str:
    """A new send job for the message (now, or at `at`); the record names it as its live job."""
    n = hl.r.hincrby(KEYS.message(mid), "jobs", 1)
    job_id = jobs.send_again_id(mid, n)
    hl.r.hset(KEYS.message(mid), "job", job_id)  # first: a crash after leaves a job the sweeper redoes
    jobs.send_again(hl, mid, n, slot, at=at)
    return job_id


def current_job_of(hl: Hotline, mid: str) -> str:
    value: str | None = hl.r.hget(KEYS.message(mid), "job")
    return value or jobs.first_send_id(mid)


def send_message(mid: str, slot: float | None = None) -> str:
    """Send message `mid` unless it already went; transient errors raise so RQ retries."""
    return _send(hotline(), mid, slot, inline=False)


def send_inline(hl: Hotline, mid: str) -> str:
    """One attempt at `mid` inside the running job its record names (an offer job).

    It never waits and never raises for the provider: a later pacing turn, or a transient
    failure that made it the outage probe, becomes a queued send job; a closed gate parks it.
    Should this job die meanwhile, the record names a dead job and the sweeper sends it
    (after a lookup, if the attempt had begun).
    """
    try:
        return _send(hl, mid, None, inline=True)
    except Exception:  # a bug or a Redis blip: the queued job (and the sweeper behind it) retries
        log.exception("sms %s: inline attempt failed; queueing it", mid)
        enqueue_send(hl, mid)
        return "queued"


def _send(hl: Hotline, mid: str, slot: float | None, *, inline: bool) -> str:
    message = messages.get(hl, mid)
    if message is None:
        log.warning("send_message: no record %s", mid)
        return "missing"
    if message.status not in PENDING or message.provider_id:
        return message.status  # already sent (or given up): a re-run does nothing
    job = None if inline else get_current_job()
    if job is not None and job.id != current_job_of(hl, mid) and job_alive(hl, current_job_of(hl, mid)):
        return "superseded"  # a newer job has this message (a re-enqueue for its turn)
    if message.kind not in messages.ALWAYS_SENT and messages.opted_out(hl, message.to):
        messages.update(hl, mid, status="optedout")
        return "optedout"
    try:
        # Asked of the sender the last attempt went to, before routing looks for another:
        # it may have the message, and the person must not get it twice.
        if (found := _found(hl, message)) is not None:
            return found
        route = _route(hl, message, slot)
    except TransportError as exc:
        if not exc.permanent:  # the sender that had the attempt cannot be asked: try again
            raise
        return _refused(hl, message, exc)  # a sender that cannot be built (wrong settings)
    if isinstance(route, str):
        return route
    sender, channel, gate, turn = route.sender, route.channel, route.gate, route.turn
    try:
        # The attempt is on the record before the provider hears of it.
        messages.update(hl, mid, status="sending", attempts=message.attempts + 1,
                        attempted_at=str(time.time()), channel=sender.name, waiting="")
        # The turn is claimed last, with nothing between it and the request: a worker that
        # stalls after claiming sends late, and the sender's next texts, on time, would land
        # in the same second as it at the provider, more than the rate allows.
        # Only a notice's turn can be given away (to an offer): only its claim asks.
        member = route.member if message.kind == routing.NOTICE else ""
        try:
            while (wait := pacing.claim(hl, channel.sender, turn, _rate(sender),
                                        sent=KEYS.sent(sender.name), member=member)) > 0:
                if wait > HOLD or inline:  # an offer job does not sleep for its texts' turns
                    return _later(hl, message, route, turn, pacing.server_now(hl) + wait)
                time.sleep(wait)
        except pacing.Moved as moved:  # an offer took this notice's turn: it goes at its new one
            return _later(hl, message, route, moved.turn, moved.turn)
        if caps.late(hl, sender, turn):
            # Counted at its turn, sent long after: booked again, so no window holds one too many.
            caps.release(hl, sender, route.member)
            messages.update(hl, mid, status=message.status, attempts=message.attempts)
            enqueue_send(hl, mid)
            log.info("sms %s: its turn on %s passed %.1f s ago; booked again", mid, sender.name,
                     pacing.server_now(hl) - turn)
            return "late"
        receipt = channel.send(message)
    except TransportError as exc:
        if exc.permanent:
            return _refused(hl, message, exc, sender, gate)
        return _transient(hl, message, exc, sender, channel, gate, inline)
    _accepted(hl, message, sender, channel, receipt, gate)
    return receipt.status


def _later(hl: Hotline, message: Message, route: Route, turn: float, at: float) -> str:
    """Not attempted after all (its turn is later): the record says so, then its job is queued."""
    when = clock.local_iso(turn, hl.settings.tz) or ""
    messages.update(hl, message.id, status=message.status, attempts=message.attempts,
                    waiting=route.why or f"its turn on {route.sender.name} at {when[11:19]}")
    enqueue_send(hl, message.id, slot=turn, at=at)
    return "paced"


@dataclass(frozen=True)
class Route:
    """The sender a message goes through now, and its booked turn."""

    sender: Sender
    channel: Channel
    gate: Gate
    turn: float
    member: str  # what the sender's caps counted this send as
    why: str = ""  # why its turn is later than the sender's rate alone makes it (caps)


def _rate(sender: Sender) -> float:
    return 0.0 if sender.kind in UNPACED else sender.rate


def _member(message: Message) -> str:
    return f"{message.id}:{message.attempts + 1}"  # each attempt counts: it may reach the carrier


def _route(hl: Hotline, message: Message, slot: float | None) -> Route | str:
    """Where the message goes now: its booked turn's sender, or routing's choice (a sender's
    probe there too); else "held" (every sender it could take is in outage) or "waiting" (no
    room yet)."""
    member = _member(message)
    current = hl.sender(message.channel) if message.channel else None
    if current is not None and slot is not None:  # a re-run for its booked turn
        if Gate(hl, current.name).state(message.id) != CLOSED:
            return Route(current, _channel(hl, current), Gate(hl, current.name), slot, member)
        caps.release(hl, current, member)  # it cannot go there now: counted again elsewhere
    claimed: list[Sender] = []
    turns: dict[str, float] = {}

    def failing(sender: Sender) -> bool:
        state = Gate(hl, sender.name).state(message.id)
        if state == PROBE:
            claimed.append(sender)
        return state == CLOSED

    def book(sender: Sender, later: bool) -> tuple[float, str]:
        booking = caps.book(hl, sender, member, pace=_channel(hl, sender).sender,
                            rate=_rate(sender), later=later, bulk=message.kind == routing.NOTICE)
        if booking.slot is None:
            return max(booking.wait, 0.001), "at its cap" if booking.full else "busy"
        turns[sender.name] = booking.slot
        return 0.0, ""

    person = hl.ledger.person(message.to)
    choice = routing.choose(
        hl.pool, Recipient(person.village, person.town) if person else Recipient(),
        purpose=message.kind, local_time=datetime.now(hl.settings.tz).time(),
        failing=failing, received_by=message.via, book=book)
    for sender in claimed:
        if sender != choice.sender:  # it was this message's to probe, but it goes elsewhere
            Gate(hl, sender.name).hand_over(message.id, 0.0)
    if choice.sender is not None:
        chosen = choice.sender
        return Route(chosen, _channel(hl, chosen), Gate(hl, chosen.name), turns[chosen.name],
                     member, choice.why)
    if choice.held_by is not None:
        return _park(hl, message, choice.held_by, choice.why)
    return _wait(hl, message, choice.wait, choice.why)


def _park(hl: Hotline, message: Message, sender: Sender, why: str) -> str:
    messages.update(hl, message.id, channel=sender.name, waiting=why)
    if not Gate(hl, sender.name).park(message):
        enqueue_send(hl, message.id)  # its outage ended meanwhile: routed again at once
        return "queued"
    log.info("sms %s held: %s", message.id, why)
    return "held"


def _wait(hl: Hotline, message: Message, wait: float, why: str) -> str:
    """No sender has room yet: the message goes again when the soonest has, saying why."""
    messages.update(hl, message.id, waiting=why)
    enqueue_send(hl, message.id, at=pacing.server_now(hl) + wait)
    log.info("sms %s waits %.0f s: %s", message.id, wait, why)
    return "waiting"


_channels: dict[tuple[int, str, Settings], Channel] = {}


def _channel(hl: Hotline, sender: Sender) -> Channel:
    """The sender's channel, built once per worker process and settings (its HTTP connections
    are kept)."""
    key = (id(hl), sender.name, hl.settings)
    if key not in _channels:
        if len(_channels) > 32:
            _channels.clear()
        _channels[key] = channel_for(hl, sender)
    return _channels[key]


def outcome_unknown(message: Message) -> bool:
    """Whether an earlier attempt may have reached the provider although we never heard back:
    it was cut off (the worker died: still "sending"), timed out, or lost the connection."""
    if not message.attempts:
        return False
    code = message.error.split(" ", 1)[0]
    return message.status == "sending" or code in UNKNOWN or code.startswith("5")


def _found(hl: Hotline, message: Message) -> str | None:
    """If an earlier attempt may have reached its sender and that sender has the message: it
    is recorded as accepted there ("found"); else None."""
    last = hl.sender(message.channel) if message.channel else None
    if last is None or not outcome_unknown(message):
        return None
    channel = _channel(hl, last)
    try:
        receipt = _lookup(channel, message)
    except TransportError:
        if not any(not in_outage(hl, other) for other in hl.pool if other != last):
            raise  # nothing else could carry it: ask again later
        # The sender is away: it counts as not having it, or its outage would hold back the
        # very messages the others are there for.
        log.warning("sms %s: %s cannot be asked whether it has it; routing it on", message.id,
                    last.name)
        return None
    if receipt is None:
        return None
    _accepted(hl, message, last, channel, receipt, Gate(hl, last.name))
    return "found"


def _lookup(channel: Channel, message: Message) -> Receipt | None:
    try:
        return channel.lookup(message)
    except TransportError as exc:
        if not exc.permanent:
            raise
        log.warning("sms %s: could not ask %s whether it has it (%s); sending", message.id,
                    channel.name, exc)
        return None


def _accepted(hl: Hotline, message: Message, sender: Sender, channel: Channel, receipt: Receipt,
              gate: Gate) -> None:
    # A status callback may have come first (delivered before we wrote "sent"): never go back.
    messages.advance(hl, message.id, receipt.status, provider_id=receipt.provider_id,
                     channel=sender.name, error="", waiting="")
    if not channel.records_state:
        channel_state.record_ok(hl, sender.name)
    _end_outage(hl, gate, message.id)


def _refused(hl: Hotline, message: Message, exc: TransportError, sender: Sender | None = None,
             gate: Gate | None = None) -> str:
    """A permanent failure: recorded; an offer that cannot reach its person is offered on."""
    changes: dict[str, str] = {"status": "failed", "error": f"{exc.code} {exc}".strip()}
    if sender is not None:
        changes["channel"] = sender.name
    messages.update(hl, message.id, **changes)
    log.warning("sms %s to %s failed for good: %s %s", message.id, mask(message.to), exc.code, exc)
    if message.kind in messages.OFFERS and message.ticket:
        jobs.offer_next(hl, message.ticket, message.id)
    if gate is not None:
        _end_outage(hl, gate, message.id)  # the provider answered: it is not in outage
    return "failed"


def _transient(hl: Hotline, message: Message, exc: TransportError, sender: Sender,
               channel: Channel, gate: Gate, inline: bool = False) -> str:
    error = f"{exc.code} {exc}".strip()
    messages.update(hl, message.id, status="queued", error=error)
    if not channel.records_state:
        channel_state.record_failure(hl, sender.name, error)
    failures = gate.fail(message)
    if any(not in_outage(hl, other) for other in hl.pool if other != sender):
        # Another sender is up: the message goes on through it, and this one is probed again
        # by the next message routed here once the backoff has passed.
        if failures:
            gate.hand_over(message.id, backoff(hl, failures))
        log.warning("sms %s to %s: %s via %s; routing it to another sender", message.id,
                    mask(message.to), error, sender.name)
        enqueue_send(hl, message.id)
        return "rerouted"
    if failures:
        log.warning("sms %s to %s: %s; retrying, others wait", message.id, mask(message.to),
                    error)
        if inline:  # the probe's retries are a send job's, first after HOTLINE_RETRY_FIRST
            enqueue_send(hl, message.id, at=pacing.server_now(hl) + hl.settings.retry_first)
            return "retrying"
        raise exc  # the probe: RQ retries it on the policy
    return _park(hl, message, sender, f"{sender.name} failing")


def _end_outage(hl: Hotline, gate: Gate, mid: str) -> None:
    """A send got through (or was answered): if it probed an outage, the outage is over and
    every parked message, whichever sender it waited on, is released oldest first."""
    if gate.probe() != mid:
        return
    held = gate.open()
    for other in hl.pool:
        if KEYS.held(other.name) != gate.held:
            held += Gate(hl, other.name).release()
    for other_mid, _ in sorted(held, key=lambda pair: pair[1]):
        enqueue_send(hl, other_mid)
    log.warning("outage over: %d held messages released, oldest first", len(held))
