"""gateway/channels' base class: what a channel must say, and the defaults it gets."""

from __future__ import annotations

import pytest

from gateway.channels import FACTORIES, Channel, Receipt, channel_for
from gateway.channels.android.transport import AndroidChannel
from gateway.context import Hotline
from gateway.messages import Message
from gateway.senders import Sender


class Plain(Channel):
    name = "plain"

    def send(self, message: Message) -> Receipt:
        return Receipt(provider_id=f"plain-{message.id}")


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


def test_a_senders_channel_is_called_by_its_name_and_built_from_its_own_connection(
        hl: Hotline) -> None:
    card = Sender("lianhe", "android", connection={"url": "http://10.0.0.5:8080", "user": "sms",
                                                    "password_file": "secret"})
    channel = channel_for(hl, card)
    assert isinstance(channel, AndroidChannel) and channel.name == "lianhe"
    assert (channel.base, channel.auth) == ("http://10.0.0.5:8080", ("sms", "secret"))
    assert hl.settings.android_gateway_url is None  # the hotline's own settings are untouched


def test_the_outbox_is_a_channel_with_the_defaults(hl: Hotline) -> None:
    outbox = FACTORIES["outbox"](hl)
    assert isinstance(outbox, Channel)
    assert (outbox.sender, outbox.records_state) == ("outbox", False)
