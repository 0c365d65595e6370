"""Sending one message record through its channel, recording the attempt before and the answer after."""

from __future__ import annotations

import logging

from gateway import messages
from gateway.channels import TransportError, get_channel
from workers.runtime import hotline

log = logging.getLogger(__name__)


def send_message(mid: str) -> str:
    """Send message `mid` unless it already went; transient errors raise so RQ retries."""
    hl = hotline()
    message = messages.get(hl, mid)
    if message is None:
        log.warning("send_message: no record %s", mid)
        return "missing"
    if message.status != "queued" and message.status != "sending":
        return message.status  # already sent (or given up): a re-run does nothing
    if message.provider_id:
        return message.status  # the provider accepted it before a crash
    if message.kind not in messages.ALWAYS_SENT and messages.opted_out(hl, message.to):
        messages.update(hl, mid, status="optedout")
        return "optedout"
    messages.update(hl, mid, status="sending", attempts=message.attempts + 1)
    channel = get_channel(hl, message.channel or None)
    try:
        receipt = channel.send(message)
    except TransportError as exc:
        if exc.permanent:
            messages.update(hl, mid, status="failed", error=f"{exc.code} {exc}".strip())
            return "failed"
        messages.update(hl, mid, error=f"{exc.code} {exc}".strip())
        raise
    messages.update(hl, mid, status=receipt.status, provider_id=receipt.provider_id,
                    channel=channel.name, error="")
    return receipt.status
