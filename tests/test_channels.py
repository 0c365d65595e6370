"""gateway/channels' base class: what a channel must say, and the defaults it gets."""

from __future__ import annotations

import pytest

from gateway.channels import FACTORIES, Channel, Receipt
from gateway.channels.fallback import FallbackChannel
from gateway.context import Hotline
from gateway.messages import Message


class Plain(Channel):
    name = "plain"

    def send(self, message: Message) -> Receipt:
        return Receipt(provider_id=f"plain-{message.id}")


class Paced(Plain):
    name = "paced"

    @property
    def sender(self) -> str:
        return "+8613800000099"


def test_a_channel_without_send_cannot_be_made() -> None:
    class Mute(Channel):
        name = "mute"

    with pytest.raises(TypeError, match="abstract"):
        Mute()  # type: ignore[abstract]


def test_a_channel_paces_by_itself_cannot_look_up_and_leaves_its_health_to_the_worker(
        hl: Hotline) -> None:
    plain = Plain()
    message = Message.from_hash({"id": "m1", "to": "+8613800000001", "status": "queued"})
    assert (plain.sender, plain.lookup(message), plain.records_state) == ("plain", None, False)


def test_the_fallback_paces_by_its_primarys_sender_and_keeps_health_itself(hl: Hotline) -> None:
    fallback = FallbackChannel(hl, Paced(), Plain)
    assert fallback.sender == "+8613800000099"
    assert FallbackChannel(hl, Plain(), Paced).sender == "plain"
    assert fallback.records_state


def test_the_outbox_is_a_channel_with_the_defaults(hl: Hotline) -> None:
    outbox = FACTORIES["outbox"](hl)
    assert isinstance(outbox, Channel)
    assert (outbox.sender, outbox.records_state) == ("outbox", False)
