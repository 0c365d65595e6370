"""Sending one message record: the attempt is recorded before the call, the provider's id after it.

Between a queued message and its channel stand:

- the outage gate: after a transient failure (refused, timed out, 429, 5xx) the channel is
  in outage. The message that failed first becomes the probe and keeps retrying on the
  retry policy (RQ's retries, Hotline.retry()); every other message parks in the held set,
  by creation time, without calling the provider. When the probe gets through, the gate
  opens and the held messages are released oldest first. Nothing is dropped meanwhile.
- pacing (gateway.pacing): a slot per sender; a job whose turn is more than HOLD seconds
  away re-enqueues itself for that turn instead of occupying the worker.
- a lookup, before any second attempt: if the provider already has the message (the worker
  died or timed out while the provider was answering), its id is recorded and nothing is
  sent again.

An offer job makes the first attempt at its own texts in-process (send_inline), which halves
the jobs per ticket; whatever cannot go at once (its turn is later, the gate is closed, the
provider failed) becomes a queued send job as above.
"""

from __future__ import annotations

import logging
import time

from rq import get_current_job

from gateway import jobs, messages, pacing
from gateway.channels import Channel, Receipt, TransportError, get_channel
from gateway.channels import state as channel_state
from gateway.context import Hotline
from gateway.jobs import job_alive
from gateway.lua import Script
from gateway.messages import Message
from gateway.phones import mask
from gateway.settings import Settings
from gateway.store import KEYS
from workers.runtime import hotline

log = logging.getLogger(__name__)

PENDING = ("queued", "sending")
UNPACED = ("outbox",)  # the local outbox has no provider to overwhelm
HOLD = 0.5  # seconds a job may wait in the worker for its turn; a longer wait is re-enqueued
# Error codes after which the provider may have the message all the same.
UNKNOWN = ("timeout", "unreachable", "client")

_PASS = Script(__name__, "gate_pass")
_CLOSE = Script(__name__, "gate_close")
_OPEN = Script(__name__, "gate_open")


class Gate:
    """One channel's outage state in Redis; every change is one Lua script, so none races."""

    def __init__(self, hl: Hotline, channel: str) -> None:
        self.hl = hl
        self.gate, self.held = KEYS.gate(channel), KEYS.held(channel)

    def admit(self, message: Message) -> bool:
        """True if the message may try the provider now; else it is parked until the outage ends."""
        return int(_PASS(self.hl.r, gate=self.gate, held=self.held, mid=message.id,
                         score=message.created_at)) != 1

    def fail(self, message: Message) -> bool:
        """Record a transient failure; True if this message is (now) the probe."""
        return bool(_CLOSE(self.hl.r, gate=self.gate, held=self.held, mid=message.id,
                           score=message.created_at, now=time.time()))

    def probe(self) -> str | None:
        value: str | None = self.hl.r.hget(self.gate, "probe")
        return value

    def open(self) -> list[str]:
        """End the outage; returns the parked message ids, oldest first."""
        return list(_OPEN(self.hl.r, gate=self.gate, held=self.held))


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
    # The configured channel names the gate and the pacing: a fallback wrapper's own name
    # changes with whichever channel carried its last message.
    name = message.channel or hl.settings.sms_channel
    try:
        channel = _channel(hl, name)
    except TransportError as exc:
        return _refused(hl, message, exc)
    gate = Gate(hl, name)
    if not gate.admit(message):
        log.info("sms %s held: %s is in outage", mid, name)
        return "held"
    try:
        if outcome_unknown(message) and (receipt := _lookup(channel, message)) is not None:
            _accepted(hl, message, channel, receipt, gate)
            return "found"
        paced = hl.settings.sms_rate > 0 and name not in UNPACED
        sender, turn = name, 0.0
        if paced:
            sender = channel.sender
            turn = pacing.reserve(hl, sender) if slot is None else slot
        # The attempt is on the record before the provider hears of it.
        messages.update(hl, mid, status="sending", attempts=message.attempts + 1,
                        attempted_at=str(time.time()))
        if paced:
            # The turn is claimed last, with nothing between it and the request: a worker that
            # stalls after claiming sends late, and the sender's next text, on time, would land
            # closer than one interval to it at the provider.
            while (wait := pacing.claim(hl, sender, turn)) > 0:
                if wait > HOLD or inline:  # an offer job does not sleep for its texts' turns
                    # Not attempted after all: the record says so before the job is queued.
                    messages.update(hl, mid, status=message.status, attempts=message.attempts)
                    enqueue_send(hl, mid, slot=turn, at=pacing.server_now(hl) + wait)
                    return "paced"
                time.sleep(wait)
        receipt = channel.send(message)
    except TransportError as exc:
        if exc.permanent:
            return _refused(hl, message, exc, channel, gate)
        return _transient(hl, message, exc, channel, gate, inline)
    _accepted(hl, message, channel, receipt, gate)
    return receipt.status


_channels: dict[tuple[int, str, Settings], Channel] = {}


def _channel(hl: Hotline, name: str) -> Channel:
    """The channel, built once per worker process and settings (its HTTP connections are kept)."""
    key = (id(hl), name, hl.settings)
    if key not in _channels:
        if len(_channels) > 16:
            _channels.clear()
        _channels[key] = get_channel(hl, name)
    return _channels[key]


def outcome_unknown(message: Message) -> bool:
    """Whether an earlier attempt may have reached the provider although we never heard back:
    it was cut off (the worker died: still "sending"), timed out, or lost the connection."""
    if not message.attempts:
        return False
    code = message.error.split(" ", 1)[0]
    return message.status == "sending" or code in UNKNOWN or code.startswith("5")


def _lookup(channel: Channel, message: Message) -> Receipt | None:
    try:
        return channel.lookup(message)
    except TransportError as exc:
        if not exc.permanent:
            raise
        log.warning("sms %s: could not ask %s whether it has it (%s); sending", message.id,
                    channel.name, exc)
        return None


def _accepted(hl: Hotline, message: Message, channel: Channel, receipt: Receipt, gate: Gate) -> None:
    # A status callback may have come first (delivered before we wrote "sent"): never go back.
    messages.advance(hl, message.id, receipt.status, provider_id=receipt.provider_id,
                     channel=channel.name, error="")
    if not channel.records_state:
        channel_state.record_ok(hl, channel.name)
    _end_outage(hl, gate, message.id)


def _refused(hl: Hotline, message: Message, exc: TransportError, channel: Channel | None = None,
             gate: Gate | None = None) -> str:
    """A permanent failure: recorded; an offer that cannot reach its person is offered on."""
    messages.update(hl, message.id, status="failed", error=f"{exc.code} {exc}".strip())
    log.warning("sms %s to %s failed for good: %s %s", message.id, mask(message.to), exc.code, exc)
    if message.kind in messages.OFFERS and message.ticket:
        jobs.offer_next(hl, message.ticket, message.id)
    if gate is not None:
        _end_outage(hl, gate, message.id)  # the provider answered: it is not in outage
    return "failed"


def _transient(hl: Hotline, message: Message, exc: TransportError, channel: Channel,
               gate: Gate, inline: bool = False) -> str:
    error = f"{exc.code} {exc}".strip()
    messages.update(hl, message.id, status="queued", error=error)
    if not channel.records_state:
        channel_state.record_failure(hl, channel.name, error)
    if gate.fail(message):
        log.warning("sms %s to %s: %s; retrying, others wait", message.id, mask(message.to),
                    error)
        if inline:  # the probe's retries are a send job's, first after HOTLINE_RETRY_FIRST
            enqueue_send(hl, message.id, at=pacing.server_now(hl) + hl.settings.retry_first)
            return "retrying"
        raise exc  # the probe: RQ retries it on the policy
    log.info("sms %s held: the channel is in outage", message.id)
    return "held"


def _end_outage(hl: Hotline, gate: Gate, mid: str) -> None:
    if gate.probe() != mid:
        return
    held = gate.open()
    for other in held:
        enqueue_send(hl, other)
    log.warning("outage over: %d held messages released, oldest first", len(held))
