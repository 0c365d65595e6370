"""gateway/store.py's one claim rule: claim, settle, unclaim, on the real Redis."""

from __future__ import annotations

import pytest

from gateway import clock
from gateway.context import Hotline
from gateway.store import KEYS, SEEN_TTL, claim, is_pending, settle, unclaim


def test_a_key_claim_is_taken_once_until_given_up(hl: Hotline) -> None:
    key = KEYS.seen("sms", "SM1")
    assert claim(hl.r, key, ttl=SEEN_TTL)
    assert not claim(hl.r, key, ttl=SEEN_TTL)  # the provider's retry: a duplicate
    assert SEEN_TTL - 5 < hl.r.ttl(key) <= SEEN_TTL
    unclaim(hl.r, key)  # handling failed: the retry is handled, not dropped
    assert claim(hl.r, key, ttl=SEEN_TTL)


def test_a_pending_claim_without_a_lease_is_never_taken_again(
        hl: Hotline, monkeypatch: pytest.MonkeyPatch) -> None:
    start = clock.timestamp()
    assert claim(hl.r, "k", "purpose")
    monkeypatch.setattr(clock, "timestamp", lambda: start + 86400)
    assert not claim(hl.r, "k", "purpose")


def test_a_pending_claim_past_its_lease_is_a_dead_claimants_and_taken(
        hl: Hotline, monkeypatch: pytest.MonkeyPatch) -> None:
    start = clock.timestamp()
    monkeypatch.setattr(clock, "timestamp", lambda: start)
    assert claim(hl.r, "k", "+8613800000001", lease=300)
    monkeypatch.setattr(clock, "timestamp", lambda: start + 299)
    assert not claim(hl.r, "k", "+8613800000001", lease=300)  # still someone's
    monkeypatch.setattr(clock, "timestamp", lambda: start + 301)
    assert claim(hl.r, "k", "+8613800000001", lease=300)
    assert is_pending(hl.r.hget("k", "+8613800000001") or "")


def test_a_settled_claim_is_never_taken_again(hl: Hotline,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    start = clock.timestamp()
    assert claim(hl.r, "k", "offer:1:+8613800000001", lease=0)
    settle(hl.r, "k", "offer:1:+8613800000001", "m7")
    monkeypatch.setattr(clock, "timestamp", lambda: start + 86400)
    assert not claim(hl.r, "k", "offer:1:+8613800000001", lease=0)
    assert hl.r.hget("k", "offer:1:+8613800000001") == "m7"
    assert not is_pending("m7")
    unclaim(hl.r, "k", "offer:1:+8613800000001")
    assert hl.r.hexists("k", "offer:1:+8613800000001") == 0
