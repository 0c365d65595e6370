"""Dashboard accounts: hashed passwords, roles bound to a village, the first admin, `hotline user add`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import accounts, clock
from gateway.accounts import AccountError
from gateway.cli import cli, common
from gateway.context import Hotline
from gateway.store import KEYS


def test_an_account_keeps_only_a_hash_of_its_password(sample: Hotline) -> None:
    accounts.create(sample, "zhang", "head", "s3cret-pass", "联合村")
    stored = sample.r.hgetall(KEYS.user("zhang"))
    assert "s3cret-pass" not in "".join(stored.values())
    user = accounts.authenticate(sample, "zhang", "s3cret-pass")
    assert user is not None and (user.role, user.village) == ("head", "联合村")
    assert accounts.authenticate(sample, "zhang", "wrong-pass") is None
    assert accounts.authenticate(sample, "nobody", "s3cret-pass") is None


def test_a_head_or_leader_needs_a_village_of_the_registry(sample: Hotline) -> None:
    with pytest.raises(AccountError) as missing:
        accounts.create(sample, "li", "leader", "long-enough")
    with pytest.raises(AccountError) as unknown:
        accounts.create(sample, "li", "leader", "long-enough", "不存在村")
    assert (missing.value.reason, unknown.value.reason) == ("needs_village", "unknown_village")
    assert accounts.get(sample, "li") is None


def test_names_roles_and_short_passwords_are_refused(sample: Hotline) -> None:
    for name, role, password, reason in [("a b", "admin", "long-enough", "bad_name"),
                                         ("ok", "boss", "long-enough", "bad_role"),
                                         ("ok", "admin", "short", "short_password")]:
        with pytest.raises(AccountError) as refused:
            accounts.create(sample, name, role, password)
        assert refused.value.reason == reason
    accounts.create(sample, "ok", "admin", "long-enough")
    with pytest.raises(AccountError) as twice:
        accounts.create(sample, "ok", "admin", "other-password")
    assert twice.value.reason == "exists"
    assert accounts.authenticate(sample, "ok", "long-enough") is not None


def test_a_head_sees_only_their_village_and_an_admin_sees_all(sample: Hotline) -> None:
    head = accounts.create(sample, "zhang", "head", "long-enough", "联合村")
    admin = accounts.create(sample, "root", "admin", "long-enough")
    other = accounts.create(sample, "bai", "head", "long-enough", "团结村")
    assert head.sees(head.village_id) and not head.sees(other.village_id)
    assert not head.sees("triage")
    assert admin.sees(head.village_id) and admin.sees(other.village_id) and admin.sees("triage")


def test_repeated_wrong_passwords_lock_the_account_for_a_while(sample: Hotline) -> None:
    accounts.create(sample, "zhang", "admin", "right-password")
    for _ in range(accounts.LOGIN_TRIES):
        assert accounts.authenticate(sample, "zhang", "guess", "203.0.113.9") is None
    assert accounts.authenticate(sample, "zhang", "right-password", "203.0.113.9") is None


def test_a_stranger_guessing_elsewhere_cannot_lock_the_owner_out(sample: Hotline) -> None:
    accounts.create(sample, "zhang", "admin", "right-password")
    for _ in range(accounts.LOGIN_TRIES * 3):
        assert accounts.authenticate(sample, "zhang", "guess", "203.0.113.9") is None
    assert accounts.authenticate(sample, "zhang", "right-password", "198.51.100.7") is not None


def test_guessing_spread_over_many_addresses_meets_a_ceiling(sample: Hotline) -> None:
    accounts.create(sample, "zhang", "admin", "right-password")
    for i in range(accounts.LOGIN_TRIES_ALL):
        assert accounts.authenticate(sample, "zhang", "guess", f"10.0.{i // 250}.{i % 250}") is None
    assert accounts.authenticate(sample, "zhang", "right-password", "198.51.100.7") is None



def test_guessing_either_side_of_a_quarter_hour_meets_the_same_ceiling(
        sample: Hotline, monkeypatch: pytest.MonkeyPatch) -> None:
    accounts.create(sample, "zhang", "admin", "right-password")
    edge = (int(clock.timestamp()) // accounts.LOGIN_WINDOW + 1) * accounts.LOGIN_WINDOW
    now = [edge - 1.0]
    monkeypatch.setattr(accounts.clock, "timestamp", lambda: now[0])
    for i in range(accounts.LOGIN_TRIES_ALL):
        if i == accounts.LOGIN_TRIES_ALL // 2:
            now[0] = edge + 1.0  # half the guesses just before the edge, half just after
        assert accounts.authenticate(sample, "zhang", "guess", f"10.0.{i // 250}.{i % 250}") is None
    assert accounts.authenticate(sample, "zhang", "right-password", "198.51.100.7") is None
    now[0] = edge + accounts.LOGIN_WINDOW + 1.0  # a quarter hour on: the first half has lapsed
    assert accounts.authenticate(sample, "zhang", "right-password", "198.51.100.7") is not None

def test_the_first_admin_gets_a_generated_password_shown_once(hl: Hotline) -> None:
    line = accounts.ensure_first_admin(hl)
    assert line is not None and line.startswith("log in as admin with password ")
    password = line.split("password ", 1)[1].split(" ", 1)[0]
    assert accounts.authenticate(hl, "admin", password) is not None
    again = accounts.ensure_first_admin(hl)  # the second start shows no password
    assert again is not None and password not in again and "hotline user passwd" in again


def test_the_first_admin_takes_the_password_from_the_environment(hl: Hotline) -> None:
    hl.settings = hl.settings.with_overrides(admin_password="from-the-env")
    line = accounts.ensure_first_admin(hl)
    assert line == "log in as admin with the password in HOTLINE_ADMIN_PASSWORD"
    assert "from-the-env" not in line
    assert accounts.authenticate(hl, "admin", "from-the-env") is not None


@pytest.fixture
def cli_env(hl: Hotline, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`hotline` commands in this process, over the test Redis."""
    monkeypatch.setenv("REDIS_URL", hl.url)
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(data_dir))
    common.settings.cache_clear()
    common.hotline.cache_clear()
    yield
    common.settings.cache_clear()
    common.hotline.cache_clear()


def test_user_add_reads_one_password_line_from_stdin(sample: Hotline, cli_env: None) -> None:
    done = CliRunner().invoke(cli, ["user", "add", "zhang", "--role", "head", "--village", "联合村",
                                    "--password-stdin"], input="piped-password\n")
    assert done.exit_code == 0, done.output
    assert "added zhang (head for 联合村)" in done.output
    assert accounts.authenticate(sample, "zhang", "piped-password") is not None


def test_user_add_asks_twice_and_refuses_a_mismatch(sample: Hotline, cli_env: None) -> None:
    typed = CliRunner().invoke(cli, ["user", "add", "boss", "--role", "admin"],
                               input="typed-password\ntyped-password\n")
    assert typed.exit_code == 0, typed.output
    assert accounts.authenticate(sample, "boss", "typed-password") is not None
    mismatch = CliRunner().invoke(cli, ["user", "add", "other", "--role", "admin"],
                                  input="first-password\nsecond-password\n")
    assert mismatch.exit_code != 0 and accounts.get(sample, "other") is None


def test_user_add_refuses_a_head_without_village_and_a_taken_name(sample: Hotline,
                                                                  cli_env: None) -> None:
    runner = CliRunner()
    no_village = runner.invoke(cli, ["user", "add", "li", "--role", "leader", "--password-stdin"],
                               input="long-enough\n")
    assert no_village.exit_code == 2 and "--village" in no_village.output
    runner.invoke(cli, ["user", "add", "li", "--role", "admin", "--password-stdin"],
                  input="long-enough\n")
    again = runner.invoke(cli, ["user", "add", "li", "--role", "admin", "--password-stdin"],
                          input="other-password\n")
    assert again.exit_code == 2 and "exists" in again.output
    assert accounts.authenticate(sample, "li", "long-enough") is not None


def test_user_passwd_changes_the_password(sample: Hotline, cli_env: None) -> None:
    accounts.create(sample, "zhang", "admin", "old-password")
    done = CliRunner().invoke(cli, ["user", "passwd", "zhang", "--password-stdin"],
                              input="new-password\n")
    assert done.exit_code == 0, done.output
    assert accounts.authenticate(sample, "zhang", "new-password") is not None
    assert accounts.authenticate(sample, "zhang", "old-password") is None
