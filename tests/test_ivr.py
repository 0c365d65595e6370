"""The keypad menu as pure functions: every path a caller can take, and the TwiML it is written as."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from ivr.machine import (
    MAX_SILENCES,
    NAME_MAX,
    Call,
    Garbage,
    Gather,
    Hangup,
    Key,
    NothingRecorded,
    Prompt,
    Record,
    Recorded,
    Silence,
    Step,
    TicketIntent,
    advance,
    event_of,
    opened,
    start,
)
from ivr.twiml import Spoken, render

T0 = 1_700_000_000.0
LONG = 600.0
URL = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"


def known_call() -> Call:
    return start("+8613900000001", known=True, village="联合村", mobile=True, language="zh",
                 now=T0).call


def names(step: Step) -> list[str]:
    return [p.name for p in step.prompts]


def press(call: Call, *keys: str) -> Step:
    step = Step(call)
    for key in keys:
        step = advance(step.call, Key(key), now=T0 + 1, max_seconds=LONG)
    return step


def test_the_emergency_line_comes_first_then_a_greeting_naming_the_village() -> None:
    step = start("+8613900000001", known=True, village="联合村", mobile=True, language="zh",
                 now=T0)
    assert [p.name for p in step.intro] == ["emergency", "greeting"]
    assert step.intro[1].context == {"place": "联合村"} and step.intro[1].local
    assert names(step) == ["menu"] and step.then == Gather("/twilio/voice/menu")
    assert step.call.stage == "menu" and step.call.step == 1


def test_an_unknown_callers_greeting_names_no_village() -> None:
    step = start("", known=False, village="", mobile=False, language="zh", now=T0)
    assert step.intro[1].context == {"place": ""} and not step.intro[1].local


@pytest.mark.parametrize(("key", "category"), [("1", "medicine"), ("2", "food"),
                                               ("3", "doctor"), ("4", "vaccination"),
                                               ("5", "utilities")])
def test_each_category_key_asks_for_confirmation(key: str, category: str) -> None:
    step = press(known_call(), key)
    assert step.call.stage == "confirm" and step.call.category == category
    assert step.prompts[0] == Prompt("confirm", {"category": category},
                                     audio=f"confirm_{category}")
    assert step.then == Gather("/twilio/voice/confirm") and step.ticket is None


def test_confirming_opens_a_ticket_for_a_known_caller() -> None:
    step = press(known_call(), "3", "1")
    assert step.ticket == TicketIntent("doctor") and step.then is None


def test_two_at_confirmation_goes_back_to_the_menu() -> None:
    step = press(known_call(), "3", "2")
    assert step.call.stage == "menu" and step.call.category == "" and names(step) == ["menu"]
    assert press(step.call, "2", "1").ticket == TicketIntent("food")


def test_star_repeats_the_menu_and_the_confirmation() -> None:
    assert names(press(known_call(), "*")) == ["menu"]
    step = press(known_call(), "1", "*")
    assert names(step) == ["confirm"] and step.call.stage == "confirm"


def test_a_wrong_key_says_so_and_repeats_the_menu() -> None:
    step = press(known_call(), "7")
    assert names(step) == ["wrong_key", "menu"] and step.call.stage == "menu"
    step = press(known_call(), "1", "5")
    assert names(step) == ["wrong_key", "confirm"] and step.call.stage == "confirm"


def test_three_wrong_keys_in_a_row_offer_voicemail() -> None:
    step = press(known_call(), "7", "0", "#")
    assert names(step) == ["wrong_key", "voicemail"] and isinstance(step.then, Record)


def test_a_right_key_resets_the_count_of_wrong_ones() -> None:
    step = press(known_call(), "7", "0", "*", "7", "0")
    assert step.call.stage == "menu" and names(step) == ["wrong_key", "menu"]


def test_silence_reprompts_twice_then_goes_to_voicemail() -> None:
    call = known_call()
    for _ in range(MAX_SILENCES):
        step = advance(call, Silence(), now=T0 + 1, max_seconds=LONG)
        assert names(step) == ["no_key", "menu"] and isinstance(step.then, Gather)
        call = step.call
    step = advance(call, Silence(), now=T0 + 1, max_seconds=LONG)
    assert names(step) == ["no_key", "voicemail"]
    assert step.then == Record("/twilio/voice/voicemail", 120) and step.call.stage == "voicemail"


def test_silence_after_hearing_the_choice_three_times_counts_as_yes() -> None:
    step = press(known_call(), "2")
    for _ in range(MAX_SILENCES):
        step = advance(step.call, Silence(), now=T0 + 1, max_seconds=LONG)
        assert names(step) == ["no_key", "confirm"]
    step = advance(step.call, Silence(), now=T0 + 1, max_seconds=LONG)
    assert step.ticket == TicketIntent("food")


def test_garbage_gets_an_apology_and_the_menu_again() -> None:
    step = advance(known_call(), Garbage(), now=T0 + 1, max_seconds=LONG)
    assert names(step) == ["sorry", "menu"] and step.call.stage == "menu"


def test_an_unknown_caller_records_name_and_address_after_confirming() -> None:
    call = start("+8613700009999", known=False, village="", mobile=True, language="zh",
                 now=T0).call
    step = press(call, "1", "1")
    assert step.ticket is None and step.call.stage == "name"
    assert step.prompts == (Prompt("ask_name", {"number": "yes"}),)
    assert step.then == Record("/twilio/voice/name", NAME_MAX)
    done = advance(step.call, Recorded(URL), now=T0 + 2, max_seconds=LONG)
    assert done.ticket == TicketIntent("medicine", URL)
    silent = advance(step.call, NothingRecorded(), now=T0 + 2, max_seconds=LONG)
    assert silent.ticket == TicketIntent("medicine")


def test_a_caller_without_a_number_is_also_asked_for_a_phone_number() -> None:
    call = start("", known=False, village="", mobile=False, language="zh", now=T0).call
    assert press(call, "4", "1").prompts[0].context == {"number": ""}


def test_key_nine_records_a_voicemail_at_once() -> None:
    step = press(known_call(), "9")
    assert names(step) == ["voicemail"] and step.then == Record("/twilio/voice/voicemail", 120)
    assert advance(step.call, Recorded(URL), now=T0, max_seconds=LONG).ticket == \
        TicketIntent("voicemail", URL)
    assert advance(step.call, NothingRecorded(), now=T0, max_seconds=LONG).ticket == \
        TicketIntent("callback")


def test_a_call_too_long_on_the_menu_ends_with_a_callback_ticket() -> None:
    step = advance(known_call(), Key("1"), now=T0 + LONG + 1, max_seconds=LONG)
    assert step.ticket == TicketIntent("callback", read_back=False)
    end = opened(step.call, step.ticket, "1042", texted=True)
    assert names(end) == ["time_up", "code_texted", "goodbye"] and end.then == Hangup()


def test_the_code_is_read_digit_by_digit_twice_then_goodbye() -> None:
    end = opened(press(known_call(), "1").call, TicketIntent("medicine"), "1042", texted=False)
    digits = [p.context["d"] for p in end.prompts if p.name == "digit"]
    assert digits == list("1042") * 2
    assert names(end)[:2] == ["received", "code_is"] and names(end)[-1] == "goodbye"
    assert "code_again" in names(end) and "code_texted" not in names(end)
    assert end.then == Hangup() and end.call.stage == "done" and end.call.code == "1042"
    assert end.prompts[2].audio_key == "digit_1"


def test_a_mobile_caller_hears_that_the_code_was_texted() -> None:
    end = opened(known_call(), TicketIntent("food"), "2001", texted=True)
    assert names(end)[-2:] == ["code_texted", "goodbye"]


def test_every_step_moves_the_step_number_on_by_one() -> None:
    call = known_call()
    for n, key in enumerate(["7", "*", "1", "2"], start=2):
        call = advance(call, Key(key), now=T0, max_seconds=LONG).call
        assert call.step == n


@pytest.mark.parametrize(("digits", "event"), [
    (None, Silence()), ("", Silence()), ("5", Key("5")), ("*", Key("*")), ("#", Key("#")),
    ("abc", Garbage()), ("12", Garbage()), ("1" * 10_000, Garbage()), ("１", Garbage()),
])
def test_webhook_digits_become_events(digits: str | None, event: object) -> None:
    assert event_of(digits) == event


def test_a_recording_is_only_a_recording_with_a_web_url() -> None:
    assert event_of(None, recording=True, recording_url=URL) == Recorded(URL)
    assert event_of(None, recording=True, recording_url=None) == NothingRecorded()
    assert event_of(None, recording=True, recording_url="javascript:x") == NothingRecorded()


def test_call_state_survives_a_round_trip_and_ignores_unknown_fields() -> None:
    call = replace(known_call(), stage="confirm", category="food", silences=1)
    assert Call.from_dict({**call.to_dict(), "extra": 1}) == call


# --- TwiML -----------------------------------------------------------------------------------

def say_text(prompt: Prompt) -> Spoken:
    return Spoken(f"<{prompt.name}>")


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def test_every_gather_is_followed_by_a_redirect_to_the_same_url() -> None:
    step = start("+8613900000001", known=True, village="联合村", mobile=True, language="zh",
                 now=T0)
    root = parse(render(step, say_text, base_url="https://h.example", language="zh"))
    tags = [child.tag for child in root]
    assert tags == ["Say", "Say", "Pause", "Gather", "Redirect"]
    gather = root.find("Gather")
    assert gather is not None
    url = "https://h.example/twilio/voice/menu?step=1"
    assert gather.get("action") == url and root.findtext("Redirect") == url
    assert (gather.get("numDigits"), gather.get("timeout"), gather.get("finishOnKey")) == \
        ("1", "10", "")
    assert [s.get("language") for s in root.iter("Say")] == ["zh-CN"] * 3
    assert root[0].text == "<emergency>"


def test_a_record_has_a_beep_a_limit_a_callback_and_a_redirect_for_silence() -> None:
    step = press(known_call(), "9")
    root = parse(render(step, say_text, base_url="https://h.example", language="en"))
    assert [c.tag for c in root] == ["Say", "Record", "Redirect"]
    record = root.find("Record")
    assert record is not None
    assert record.get("playBeep") == "true" and record.get("maxLength") == "120"
    assert record.get("recordingStatusCallback") == "https://h.example/twilio/voice/recording"
    assert record.get("action") == root.findtext("Redirect")
    assert root[0].get("language") == "en"


def test_a_configured_neural_voice_speaks_a_little_slower() -> None:
    step = press(known_call(), "1")
    root = parse(render(step, say_text, base_url="", language="zh", voice="Polly.Zhiyu"))
    say = next(root.iter("Say"))
    assert say.get("voice") == "Polly.Zhiyu"
    prosody = say.find("prosody")
    assert prosody is not None and prosody.get("rate") == "90%"
    plain = parse(render(step, say_text, base_url="", language="zh", voice="alice"))
    assert next(plain.iter("Say")).get("voice") == "alice"


def test_a_recorded_prompt_is_played_instead_of_said() -> None:
    end = opened(known_call(), TicketIntent("food"), "1", texted=False)

    def speak(prompt: Prompt) -> Spoken:
        return Spoken("", url="https://h/audio/zh/goodbye.mp3") if prompt.name == "goodbye" \
            else Spoken(prompt.name)

    root = parse(render(end, speak, base_url="", language="zh"))
    assert root.findtext("Play") == "https://h/audio/zh/goodbye.mp3"
    assert [c.tag for c in root][-2:] == ["Play", "Hangup"]
