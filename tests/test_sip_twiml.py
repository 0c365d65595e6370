"""The SIP agent's TwiML interpreter, without SIP: verbs parsed as Twilio reads them, requests signed."""

from __future__ import annotations

import re

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from gateway.sip import twiml_runner as tr

BASE = "https://hotline.example/voice"


def menu_document() -> str:
    r = VoiceResponse()
    r.say("ni hao", language="zh-CN")
    r.pause(length=1)
    g = r.gather(input="dtmf", num_digits=1, timeout=6, finish_on_key="", action=BASE + "/menu?step=1",
                 method="POST")
    g.play("https://hotline.example/audio/zh/menu.wav")
    g.say("an yi", language="zh-CN")
    r.redirect(BASE + "/menu?step=1", method="POST")
    return str(r.to_xml())


def test_menu_verbs_in_order() -> None:
    verbs = tr.parse(menu_document(), BASE + "/incoming")
    assert [type(v).__name__ for v in verbs] == ["Say", "Pause", "Gather", "Redirect"]
    gather = verbs[2]
    assert isinstance(gather, tr.Gather)
    assert gather.num_digits == 1 and gather.timeout == 6 and gather.finish_on_key == ""
    assert gather.action == BASE + "/menu?step=1"
    assert gather.prompts == (tr.Play("https://hotline.example/audio/zh/menu.wav"), tr.Say("an yi"))


def test_record_and_hangup() -> None:
    r = VoiceResponse()
    r.record(action=BASE + "/vm", max_length=60, timeout=4, finish_on_key="#",
             recording_status_callback=BASE + "/recording")
    r.hangup()
    verbs = tr.parse(str(r.to_xml()), BASE)
    assert verbs == [tr.Record(action=BASE + "/vm", max_length=60, timeout=4, finish_on_key="#",
                               status_callback=BASE + "/recording"), tr.Hangup()]


def test_gather_without_action_posts_to_current_url() -> None:
    verbs = tr.parse("<Response><Gather numDigits='2'/></Response>", BASE + "/x?step=3")
    assert isinstance(verbs[0], tr.Gather) and verbs[0].action == BASE + "/x?step=3"
    assert verbs[0].finish_on_key == "#"


def test_relative_urls_are_taken_from_the_current_one_as_twilio_takes_them() -> None:
    doc = ("<Response><Gather action='menu?step=2'><Play>/audio/zh/menu.wav</Play></Gather>"
           "<Redirect>../again</Redirect></Response>")
    gather, redirect = tr.parse(doc, BASE + "/incoming", within="https://hotline.example")
    assert isinstance(gather, tr.Gather) and gather.action == BASE + "/menu?step=2"
    assert gather.prompts == (tr.Play("https://hotline.example/audio/zh/menu.wav"),)
    assert redirect == tr.Redirect("https://hotline.example/again")


def test_an_answer_pointing_outside_the_web_is_refused_not_followed() -> None:
    import pytest

    within = "https://hotline.example"
    for doc in ("<Response><Redirect>https://elsewhere.example/x</Redirect></Response>",
                "<Response><Gather action='https://hotline.example.evil/x'/></Response>",
                "<Response><Play>http://10.0.0.1/a.wav</Play></Response>",
                "<Response><Record recordingStatusCallback='//elsewhere.example/r'/></Response>"):
        with pytest.raises(tr.ForeignUrl):
            tr.parse(doc, BASE + "/incoming", within=within)
    assert tr.parse("<Response><Redirect>https://elsewhere.example/x</Redirect></Response>", BASE)


def test_digits_end_at_num_digits_or_finish_key() -> None:
    c = tr.DigitCollector(tr.Gather(action="", num_digits=1, finish_on_key=""))
    assert c.key("1") and c.digits == "1"
    c = tr.DigitCollector(tr.Gather(action="", num_digits=0, finish_on_key="#"))
    assert not c.key("4") and not c.key("2") and c.key("#") and c.digits == "42"


def test_call_sid_shape_and_signature_validates() -> None:
    assert re.fullmatch(r"CA[0-9a-f]{32}", tr.new_call_sid())
    form = {"CallSid": tr.new_call_sid(), "From": "+8613800138000", "Digits": "1"}
    sig = tr.signature("secret", BASE + "/menu?step=1", form)
    assert RequestValidator("secret").validate(BASE + "/menu?step=1", form, sig)
    assert not RequestValidator("other").validate(BASE + "/menu?step=1", form, sig)


def test_sip_settings_and_peers() -> None:
    import pytest

    from gateway.settings import ConfigError
    from gateway.sip import config

    assert config.from_env({}) == ()
    (s,) = config.from_env({"HOTLINE_SIP_LISTEN": "127.0.0.1:5070",
                            "HOTLINE_SIP_PEERS": "127.0.0.2, 10.8.0.0/24"})
    assert (s.host, s.port, s.rtp_first, s.rtp_last) == ("127.0.0.1", 5070, 16384, 16483)
    assert s.allows("127.0.0.2") and s.allows("10.8.0.77")
    assert not s.allows("127.0.0.1") and not s.allows("bogus")
    assert not config.from_env({"HOTLINE_SIP_LISTEN": "0.0.0.0:5060"})[0].allows("127.0.0.2")
    for env in ({"HOTLINE_SIP_LISTEN": "5060"}, {"HOTLINE_SIP_LISTEN": "h:1", "HOTLINE_SIP_PEERS": "x.y"},
                {"HOTLINE_SIP_LISTEN": "h:1", "HOTLINE_SIP_RTP_PORTS": "9-8"},
                {"HOTLINE_SIP_LISTEN": "h:1,h:1"},
                {"HOTLINE_SIP_LISTEN": "h:1,h:2", "HOTLINE_SIP_RTP_PORTS": "20000-20014"},
                {"HOTLINE_SIP_LISTEN": "h:1,:2"}):
        with pytest.raises(ConfigError):
            config.from_env(env)


def test_several_addresses_share_the_rtp_range_without_overlap() -> None:
    from gateway.sip import config

    engines = config.from_env({"HOTLINE_SIP_LISTEN": "0.0.0.0:5060, 0.0.0.0:5062,[::1]:5064",
                               "HOTLINE_SIP_PEERS": "192.168.1.30", "HOTLINE_SIP_NUMBER": "12345",
                               "HOTLINE_SIP_RTP_PORTS": "20000-20031"})
    assert [(e.host, e.port) for e in engines] == [("0.0.0.0", 5060), ("0.0.0.0", 5062), ("::1", 5064)]
    assert [(e.rtp_first, e.rtp_last) for e in engines] == [(20000, 20009), (20010, 20019), (20020, 20029)]
    assert all(e.number == "12345" and e.allows("192.168.1.30") for e in engines)
