"""Phone numbers in every written form villagers and spreadsheets use."""

from __future__ import annotations

import pytest

from gateway.phones import BadPhone, caller, is_mobile, mask, mask_text, normalise, try_normalise


@pytest.mark.parametrize(("written", "e164"), [
    ("138 0000 1234", "+8613800001234"),
    ("13800001234", "+8613800001234"),
    ("+86-138-0000-1234", "+8613800001234"),
    ("+86 138 0000 1234", "+8613800001234"),
    ("0086 13800001234", "+8613800001234"),
    ("0482-8261234", "+864828261234"),
    ("(0482) 826 1234", "+864828261234"),
    ("13800001234.0", "+8613800001234"),
    ("１３８００００１２３４", "+8613800001234"),
    ("＋８６ １３８ ００００ １２３４", "+8613800001234"),
    ("+1 415 555 0100", "+14155550100"),
])
def test_written_forms_become_e164(written: str, e164: str) -> None:
    assert normalise(written, "CN") == e164


@pytest.mark.parametrize(("written", "reason"), [
    ("", "empty"),
    ("abc", "not a phone number"),
    ("12345", "not a number in use"),
    ("1380000123", "not a number in use"),
    ("+86 138 0000 1234 5678", "digits"),
])
def test_invalid_numbers_are_refused_with_a_reason(written: str, reason: str) -> None:
    with pytest.raises(BadPhone, match=reason):
        normalise(written, "CN")


def test_default_region_applies_to_numbers_without_country_code() -> None:
    assert normalise("(415) 555-0100", "US") == "+14155550100"


def test_mask_keeps_only_the_ends_of_a_number() -> None:
    assert mask("+8613800001234") == "+86 138****1234"
    assert mask("+864828261234") == "+86 482***1234"
    assert mask(None) == "-"


def test_mask_text_hides_numbers_inside_free_text() -> None:
    line = "王芳 13800001234 will come"
    assert mask_text(line) == "王芳 +86 138****1234 will come"


def test_mobiles_and_landlines_are_told_apart() -> None:
    assert is_mobile("+8613800001234")
    assert not is_mobile("+864828261234")


def test_mask_text_leaves_identifiers_alone_but_not_numbers_after_chinese() -> None:
    assert mask_text("job sweep-1796097064 done, sid SM00000000000000000001") == (
        "job sweep-1796097064 done, sid SM00000000000000000001")
    assert mask_text("电话13800001234，") == "电话+86 138****1234，"


@pytest.mark.parametrize("raw", ["+8613800001234", "13800001234", "+864828261234", "04828261234",
                                 "+12025550123", "+8612345", "+86999999999999", "abc", "",
                                 "+447911123456", "+8610123"])
def test_a_callers_number_is_read_as_normalise_and_is_mobile_read_it(raw: str) -> None:
    e164 = try_normalise(raw, "CN")
    assert caller(raw, "CN") == ((e164, is_mobile(e164)) if e164 else None)
