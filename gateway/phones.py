"""Phone numbers: every written form villagers and spreadsheets use, made E.164, masked for logs."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote_plus

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

_EXCEL_FLOAT = re.compile(r"^\d+\.0+$")
_INTL_ZEROS = re.compile(r"^00(?=[1-9])")


class BadPhone(ValueError):
    """A number that is not a valid phone number; the message says why, in plain words."""


def normalise(raw: object, region: str = "CN") -> str:
    """Return `raw` as E.164 (``+8613800001234``) or raise `BadPhone` with the reason."""
    return phonenumbers.format_number(_parse(raw, region), PhoneNumberFormat.E164)


def _parse(raw: object, region: str, *, check_valid: bool = True) -> phonenumbers.PhoneNumber:
    text = unicodedata.normalize("NFKC", str(raw if raw is not None else "")).strip()
    if not text:
        raise BadPhone("empty")
    if _EXCEL_FLOAT.match(text):
        text = text.split(".", 1)[0]  # Excel stored the number as 13800001234.0
    text = _INTL_ZEROS.sub("+", text)  # 0086 138... is +86 138...
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise BadPhone(f"not a phone number: {exc.args[0] if exc.args else text}") from None
    if not phonenumbers.is_possible_number(number):
        raise BadPhone("wrong number of digits")
    if check_valid and not phonenumbers.is_valid_number(number):
        raise BadPhone("not a number in use in its country")
    return number


def caller(raw: object, region: str = "CN") -> tuple[str, bool] | None:
    """(E.164, can receive SMS) for a caller's number, parsed once; None if it is not valid."""
    try:
        number = _parse(raw, region, check_valid=False)
    except BadPhone:
        return None
    # A number is valid exactly when its type is known (phonenumbers' own definition): one
    # match against the country's patterns tells both.
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), kind in _MOBILE


def try_normalise(raw: object, region: str = "CN") -> str | None:
    """E.164, or None for anything that is not a valid number."""
    try:
        return normalise(raw, region)
    except BadPhone:
        return None


def is_mobile(e164: str) -> bool:
    """True when the number can receive SMS (mobile, or of a type that may be mobile)."""
    try:
        return _mobile(phonenumbers.parse(e164))
    except NumberParseException:
        return False


_MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def _mobile(number: phonenumbers.PhoneNumber) -> bool:
    return phonenumbers.number_type(number) in _MOBILE


def mask(e164: str | None) -> str:
    """``+86 138****1234``: enough to tell numbers apart in a log, not enough to ring one."""
    if not e164:
        return "-"
    try:
        number = phonenumbers.parse(e164)
    except NumberParseException:
        digits = re.sub(r"\D", "", e164)
        return f"***{digits[-2:]}" if digits else "***"
    national = str(number.national_number)
    if len(national) <= 6:
        shown = national[:1] + "*" * (len(national) - 3) + national[-2:]
    else:
        shown = national[:3] + "*" * (len(national) - 7) + national[-4:]
    return f"+{number.country_code} {shown}"


# Not inside an identifier (a job id like sweep-1796097064, a sid like SM0123...): those are
# not numbers anyone can ring, and masking them only hides what an operator needs to read.
_LONG_DIGITS = re.compile(r"(?<![A-Za-z0-9_-])\+?\d[\d \-]{6,}\d(?![A-Za-z0-9_])")


# The same in a URL (a query string in an access log): `%2B` or `+` before it, `%20`, `+` or
# `%2D` between its digits (`phone=%2B8613900000001`, `phone=138%200000%201234`).
_ENCODED_DIGITS = re.compile(
    r"(?<![A-Za-z0-9_-])(?:%2[Bb]|\+)?\d(?:\d|%20|%2[Dd]|\+|[ \-]){6,}\d(?![A-Za-z0-9_])")


def _mask_run(run: str) -> str:
    return mask(try_normalise(run) or run)


def _mask_encoded(run: str) -> str:
    if "%" not in run and "+" not in run[1:]:
        return run  # written plainly: _LONG_DIGITS's part
    decoded = unquote_plus(run)
    return _mask_run("+" + decoded[1:] if run.startswith("+") else decoded)


def mask_text(text: str) -> str:
    """Mask every phone-like run of digits inside a free text (for log lines), written plainly
    or percent-encoded as in a URL."""
    if "%" in text or "+" in text:
        text = _ENCODED_DIGITS.sub(lambda m: _mask_encoded(m.group(0)), text)
    return _LONG_DIGITS.sub(lambda m: _mask_run(m.group(0)), text)


def spoken_digits(e164: str) -> str:
    """The national number for reading aloud or printing (``138 0000 1234``)."""
    try:
        number = phonenumbers.parse(e164)
    except NumberParseException:
        return e164
    return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)


def dial(e164: str, region: str = "CN") -> str:
    """A number as people at home dial it (13800000003, 04828261234); foreign ones stay E.164."""
    try:
        number = phonenumbers.parse(e164)
    except NumberParseException:
        return e164
    if phonenumbers.region_code_for_number(number) != region:
        return e164
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    return "".join(ch for ch in national if ch.isdigit())
