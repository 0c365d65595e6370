"""Every SMS template renders with realistic values inside its segment budget, counted as Twilio bills."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import texts
from gateway.notices import Notice
from gateway.settings import ROOT, Settings
from gateway.tickets import Ticket

SETTINGS = Settings(templates_dir=ROOT / "templates")
CODE = "10427"  # five digits: codes grow past 9999 in a busy winter

# Long but real values: a Mongol gacha's name, a six-character name, a full address.
ZH_TICKET = Ticket(
    code=CODE, status="accepted", category="utilities", channel="sms", caller="+8613900000001",
    created_at=0, caller_name="额尔敦其其格", village_id="v1", village="巴日嘎斯台嘎查",
    grid="第十二网格", text="家里暖气管子冻裂了，屋里很冷，老人腿脚不便，请尽快来人看看", language="zh")
EN_TICKET = Ticket(
    code=CODE, status="accepted", category="utilities", channel="sms", caller="+8613900000001",
    created_at=0, caller_name="Erdene Tsetseg", village_id="v1", village="Bayan Hoshuu",
    grid="Grid 12", text="The heating pipe burst and the house is freezing; she cannot walk far.",
    language="en")
ZH_NOTICE = Notice(id="12", village_id="v1", village="巴日嘎斯台嘎查",
                   title="明天上午9点在村委会接种疫苗", body="明天上午9点在村委会接种疫苗。请带身份证。",
                   author="+8613800000021", audience="team", created_at=0)
EN_NOTICE = Notice(id="12", village_id="v1", village="Bayan Hoshuu",
                   title="Vaccination at 9 tomorrow", body="Vaccination at 9 tomorrow at the office.",
                   author="+8613800000021", audience="team", created_at=0)


def context(language: str) -> dict[str, Any]:
    """Every value any SMS template is rendered with, at realistic worst-case lengths."""
    zh = language == "zh"
    ticket = ZH_TICKET if zh else EN_TICKET
    name = "额尔敦其其格" if zh else "Erdene Tsetseg"
    return {
        "ticket": ticket, "notice": ZH_NOTICE if zh else EN_NOTICE, "code": CODE,
        "codes": [CODE, "10428", "10429"], "verb": "take", "known": True, "ask_text": False,
        "address": "巴日嘎斯台嘎查三组12号" if zh else "Bayan Hoshuu group 3 no. 12",
        "caller_number": "04828261234", "mine": [ticket] * 5, "more": 3, "waiting": [ticket] * 5,
        "who": name, "everyone": True, "why": "too_long",
        "words": "您好，这里是科尔沁右翼前旗巴日嘎斯台乡团结嘎查暖心服务热线。" if zh else
                 "Hello, this is the Bayan Hoshuu care hotline.",
        "addition": ("不用买菜了，还要一盒降压药硝苯地平，另外家里的暖气还是不热，麻烦看一下" if zh else
                     "No need for vegetables now, but please bring one box of blood pressure pills "
                     "and have a look at the heating too."),
        **{f"{role}_name": name for role in ("holder", "member", "helper", "resident", "leader",
                                             "closer")},
        **{f"{role}_number": "13800000003" for role in ("holder", "member", "helper")},
    }


# Each template's variants: the flags that change its wording.
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "opened": [{"known": k, "ask_text": a} for k in (True, False) for a in (True, False)],
    "which_one": [{"verb": v} for v in ("take", "done", "release")],
    "list": [{"mine": [], "waiting": []}, {"mine": [], "more": 0}, {}],
    "closed_already": [{"ticket": "done"}, {"ticket": "cancelled"}],
    "notice_saved": [{"everyone": True}, {"everyone": False}],
    "take_refused": [{"why": w} for w in ("silent", "too_long", "empty", "unreadable", "missing",
                                          "failed")],
}
# Templates that carry the need itself, a list, or a notice's text get two segments;
# every other one fits one, in both languages.
TWO_SEGMENTS = {"taken", "assigned_to_you", "list", "help_leader", "notice"}


def names() -> list[str]:
    return texts.template_names(SETTINGS, "sms", "zh")


def renderings(language: str, name: str) -> list[str]:
    out = []
    for variant in VARIANTS.get(name, [{}]):
        ctx = context(language)
        for key, value in variant.items():
            if key == "ticket":  # a status variant
                from dataclasses import replace

                ctx["ticket"] = replace(ctx["ticket"], status=value)
            else:
                ctx[key] = value
        out.append(texts.sms(SETTINGS, name, language=language, **ctx))
    return out


def test_every_chinese_template_has_an_english_twin() -> None:
    assert names() == texts.template_names(SETTINGS, "sms", "en")
    assert len(names()) > 30


@pytest.mark.parametrize("name", names())
def test_a_chinese_text_fits_its_budget_of_segments(name: str) -> None:
    budget = 2 if name in TWO_SEGMENTS else 1
    for body in renderings("zh", name):
        assert texts.segments(body) <= budget, f"{name}: {len(body)} chars: {body}"


@pytest.mark.parametrize("name", names())
def test_an_english_text_stays_gsm7_and_fits_its_budget(name: str) -> None:
    budget = 2 if name in TWO_SEGMENTS else 1
    for body in renderings("en", name):
        assert texts.is_gsm7(body), f"{name} forces UCS-2: {[c for c in body if not texts.is_gsm7(c)]}"
        assert texts.segments(body) <= budget, f"{name}: {len(body)} chars: {body}"


def about_a_ticket() -> list[str]:
    """Templates that speak of a ticket (they refer to one in their source)."""
    def source(name: str) -> str:
        return (SETTINGS.templates_dir / "sms" / "zh" / f"{name}.txt").read_text(encoding="utf-8")

    return [n for n in names() if any(ref in source(n) for ref in ("ticket.", "{{ code", "codes"))]


def test_most_texts_are_about_a_ticket() -> None:
    assert len(about_a_ticket()) >= 20


@pytest.mark.parametrize("name", about_a_ticket())
def test_every_text_about_a_ticket_carries_its_code(name: str) -> None:
    for language in ("zh", "en"):
        for body in renderings(language, name):
            assert f"#{CODE}" in body, f"{language}/{name}: {body}"


@pytest.mark.parametrize("name", names())
def test_no_text_is_left_with_template_syntax_or_blank_lines(name: str) -> None:
    for language in ("zh", "en"):
        for body in renderings(language, name):
            assert "{" not in body and "}" not in body and "\n\n" not in body
            assert body == body.strip() and body


@pytest.mark.parametrize(("body", "expected"), [
    ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("求" * 70, 1), ("求" * 71, 2), ("求" * 134, 2), ("求" * 135, 3),
    ("a" * 69 + "求", 1), ("a" * 70 + "求", 2),  # one Chinese character makes it all UCS-2
    ("a" * 100 + "\u00a0", 2),  # so does a stray non-breaking space
    ("[" * 80, 1), ("[" * 81, 2),  # GSM-7 extension characters count twice
])
def test_segments_are_counted_as_twilio_bills_them(body: str, expected: int) -> None:
    assert expected == texts.segments(body)


def test_cleaning_removes_what_would_silently_force_ucs2() -> None:
    assert texts.is_gsm7(texts.clean_sms("Reply\u00a0\u201cACCEPT 1042\u201d \u2013 thanks\u2026"))
