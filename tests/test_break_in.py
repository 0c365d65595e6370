"""Issue 18: the holes found by trying to break in, each kept as the try that found it."""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from jinja2.sandbox import SecurityError

from gateway import accounts, clock, logs, phones, registry, spool, texts, tickets
from gateway.app import create_app
from gateway.broadcast import page, script
from gateway.channels.android import events as android_events
from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis
from gateway.notices import Notice
from gateway.registry_file import RegistryFileError, import_file
from gateway.settings import ROOT, Settings
from tests.callsim import FlaskTransport, SimCall
from tests.conftest import (
    AUTH_TOKEN,
    DUTY,
    PASSWORD,
    PUBLIC_URL,
    RESIDENT,
    STRANGER,
    post_twilio,
    twilio_signature,
)
from tests.test_dashboard import TOKEN, login
from tests.test_dashboard import post as dashboard_post

EVIL_RESIDENT = "+8613900000777"


# --- 2. a village's name never becomes a template path --------------------------------------

def _plant(folder: Path) -> None:
    """Templates an attacker left in a folder of their choosing, for every kind of words."""
    for kind in ("sms", "voice", "broadcast"):
        target = folder / kind / "zh"
        target.mkdir(parents=True)
        for template in (ROOT / "templates" / kind / "zh").iterdir():
            (target / template.name).write_text("PLANTED {{ 6 * 7 }}\n", encoding="utf-8")


def _ledger_with_village(hl: Hotline, tmp_path: Path, village: str) -> None:
    csv = tmp_path / "ledger.csv"
    csv.write_text("村(社区),网格,姓名,电话,身份,类别,地址,备注\n"
                   f"{village},一,王大妈,{EVIL_RESIDENT},居民,老年人,一组,\n", encoding="utf-8")
    report = import_file(hl.r, csv, "CN")
    assert report.ok, report.errors


@pytest.mark.parametrize("shape", ["absolute", "dots"])
def test_a_village_named_like_a_path_loads_no_template_from_there(
        hl: Hotline, tmp_path: Path, shape: str) -> None:
    planted = tmp_path / "planted"
    _plant(planted)
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "villages" / "联合村").mkdir(parents=True)  # a folder to climb out of
    settings = hl.settings.with_overrides(templates_dir=templates)
    name = str(planted) if shape == "absolute" else \
        "../" * (len(templates.parts) + 2) + str(planted).lstrip("/")
    _ledger_with_village(hl, tmp_path, name)
    client = create_app(settings, url=hl.url).test_client()
    reply = post_twilio(client, "/twilio/sms", {"MessageSid": "SM" + "a" * 32,
                                                "From": EVIL_RESIDENT, "Body": "1"})
    assert reply.status_code == 200
    assert "PLANTED" not in reply.get_data(as_text=True) and "42" not in reply.get_data(as_text=True)
    call = SimCall(FlaskTransport(client), EVIL_RESIDENT, PUBLIC_URL, AUTH_TOKEN).ring()
    assert "PLANTED" not in call.twiml
    notice = Notice(id="1", village_id="v1", village=name, title="通知", body="明天开会。",
                    author="", audience="none", created_at=0, language="zh")
    prepared = script.prepare(settings, notice)
    assert "PLANTED" not in script.render(settings, prepared)
    assert "PLANTED" not in page.render(settings, prepared)


def test_a_villages_own_folder_is_still_used_and_its_templates_are_sandboxed(
        hl: Hotline, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    own = templates / "villages" / "联合村" / "sms" / "zh"
    own.mkdir(parents=True)
    (own / "menu.txt").write_text("联合村自己的菜单\n", encoding="utf-8")
    (own / "help_volunteer.txt").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}\n", encoding="utf-8")
    settings = hl.settings.with_overrides(templates_dir=templates)
    assert texts.sms(settings, "menu", village="联合村") == "联合村自己的菜单"
    assert texts.sms(settings, "menu", village="联合村/../联合村") != "联合村自己的菜单"
    with pytest.raises(SecurityError):
        texts.sms(settings, "help_volunteer", village="联合村")


# --- 3. data files are private by default ------------------------------------------------------

@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A shell's usual umask (022): what the hotline writes must be private anyway."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_embedded_redis_keeps_its_files_private(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    (data / "redis.log").write_text("left by an older version\n")
    (data / "redis.log").chmod(0o644)
    server = EmbeddedRedis(data)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("hl:user:admin", "a password hash")
        client.execute_command("BGREWRITEAOF")
        time.sleep(1.5)  # appendfsync everysec, and the rewrite
        client.save()
    finally:
        server.stop()
    files = [p for p in data.rglob("*") if p.is_file() and not p.name.endswith(".sock")]
    assert any("appendonly" in p.name for p in files) and (data / "redis.log").exists()
    assert _mode(data) == 0o700
    assert {p.name: oct(_mode(p)) for p in files if _mode(p) & 0o077} == {}
    assert all(_mode(p) & 0o077 == 0 for p in data.rglob("*") if p.is_dir())


def test_the_spool_and_the_generated_keys_are_private(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "data"
    spool.append(data, "sms", {"From": "+8613900000001", "Body": "我要降压药"})
    Settings(data_dir=data).webhook_token()
    assert _mode(data) == 0o700
    assert {p.name: oct(_mode(p)) for p in data.iterdir()} == {
        "spool.jsonl": "0o600", "webhook_token": "0o600"}


@pytest.mark.parametrize("name", ["hotline-web.service", "hotline-worker@.service",
                                  "hotline-backup.service"])
def test_the_units_write_with_a_private_umask(name: str) -> None:
    text = (ROOT / "deploy" / "systemd" / name).read_text()
    assert "\nUMask=0077\n" in text.split("[Service]", 1)[1]
    assert "UMask=0077" in (ROOT / "deploy" / "redis" / "private.conf").read_text()
    assert "## 8. What to keep private" in (ROOT / "deploy" / "README.md").read_text()


# --- 4. logout and the 12-hour limit end the session on the server -----------------------------

def _logged_in_client(app: Flask, name: str = "admin") -> FlaskClient:
    client = app.test_client()
    assert login(client, name).status_code == 302
    return client


def _copy(client: FlaskClient, app: Flask) -> FlaskClient:
    """Another browser holding a copy of `client`'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def test_a_copied_session_cookie_stops_working_at_logout(app: Flask, people: Hotline) -> None:
    owner = _logged_in_client(app)
    thief = _copy(owner, app)
    assert thief.get("/board").status_code == 200  # the copy works while the session lives
    assert dashboard_post(owner, "/logout").status_code == 302
    assert thief.get("/board").status_code == 302
    assert not list(people.r.scan_iter("hl:session:*"))


def test_twelve_hours_after_login_the_session_ends_however_often_it_is_used(
        app: Flask, people: Hotline, monkeypatch: pytest.MonkeyPatch) -> None:
    start = clock.timestamp()
    owner = _logged_in_client(app)
    [key] = people.r.scan_iter("hl:session:*")
    first_ttl = people.r.ttl(key)
    assert 0 < first_ttl <= 12 * 3600
    for hours in (2, 6, 11.9):
        monkeypatch.setattr(clock, "timestamp", lambda h=hours: start + h * 3600)
        assert owner.get("/board").status_code == 200
    assert people.r.ttl(key) <= first_ttl  # use does not extend it
    monkeypatch.setattr(clock, "timestamp", lambda: start + 12 * 3600 + 5)
    assert owner.get("/board").status_code == 302
    monkeypatch.setattr(clock, "timestamp", lambda: start)
    people.r.delete(key)  # as Redis's TTL does at the 12th hour
    assert _copy(owner, app).get("/board").status_code == 302


# --- 5. guessing is limited without locking the owner out -------------------------------------

def _guess(client: FlaskClient, address: str, name: str = "zhang",
           password: str = "wrong-password") -> int:
    token = TOKEN.search(client.get("/login").get_data(as_text=True))
    assert token
    answer = client.post("/login", data={"name": name, "password": password,
                                         "csrf_token": token.group(1)},
                         environ_base={"REMOTE_ADDR": address})
    return answer.status_code


@pytest.fixture
def one_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock held still: every try falls in one LOGIN_WINDOW."""
    now = clock.timestamp()
    monkeypatch.setattr(clock, "timestamp", lambda: now)


def test_guessing_from_many_addresses_does_not_lock_the_owner_out(
        app: Flask, people: Hotline, one_window: None) -> None:
    owner = app.test_client()
    assert _guess(owner, "10.0.0.1", password=PASSWORD) == 302  # the head's usual office
    laptop = app.test_client()
    assert _guess(laptop, "10.0.0.2", password=PASSWORD) == 302  # and their laptop, elsewhere
    attacker = app.test_client()
    for i in range(10):
        for _ in range(10):
            assert _guess(attacker, f"192.0.2.{i}") == 401
    # each attacking address is done for; a new one meets the account's ceiling
    assert _guess(attacker, "192.0.2.1", password=PASSWORD) == 401
    assert _guess(attacker, "192.0.2.99", password=PASSWORD) == 401
    # the owner gets in: from the office, and from the laptop at a new address (its cookie)
    assert _guess(app.test_client(), "10.0.0.1", password=PASSWORD) == 302
    assert _guess(laptop, "198.51.100.7", password=PASSWORD) == 302
    # another account is not touched
    assert _guess(app.test_client(), "198.51.100.8", name="bai", password=PASSWORD) == 302


def test_one_address_cannot_spray_guesses_over_every_account(app: Flask, people: Hotline,
                                                            one_window: None) -> None:
    attacker = app.test_client()
    for i in range(accounts.LOGIN_TRIES_ADDRESS):
        _guess(attacker, "192.0.2.50", name=f"user{i}")
    assert _guess(attacker, "192.0.2.50", name="bai", password=PASSWORD) == 401
    assert _guess(app.test_client(), "192.0.2.51", name="bai", password=PASSWORD) == 302


# --- 9. no user-name enumeration by timing ---------------------------------------------------------

def test_a_wrong_password_costs_one_same_strength_hash_check_for_an_unknown_name_too(
        people: Hotline, monkeypatch: pytest.MonkeyPatch) -> None:
    # What timing would reveal, asserted without a clock: a real name and an unknown one each
    # cost exactly one check against a hash of the same method and work factor.
    checked: list[str] = []
    real_check = accounts.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        checked.append(pwhash.split("$", 1)[0])  # e.g. "scrypt:32768:8:1"
        return real_check(pwhash, password)

    monkeypatch.setattr(accounts, "check_password_hash", counting)
    assert accounts.authenticate(people, "zhang", "wrong-password", "10.9.9.1") is None
    assert accounts.authenticate(people, "nobody", "wrong-password", "10.9.9.2") is None
    assert len(checked) == 2 and checked[0] == checked[1], checked


# --- 6. a township's duty officer takes only their own town's tickets ---------------------------

OTHER_TOWN_DUTY = "+8613800000061"
OTHER_TOWN_RESIDENT = "+8613900000061"


def _sms(client: FlaskClient, sender: str, body: str) -> str:
    answer = post_twilio(client, "/twilio/sms", {"MessageSid": f"SM{uuid.uuid4().hex}",
                                                 "From": sender, "Body": body})
    assert answer.status_code == 200
    return str(answer.get_data(as_text=True))


def test_a_duty_officer_cannot_take_another_towns_ticket(sample: Hotline, client: FlaskClient,
                                                         tmp_path: Path) -> None:
    csv = tmp_path / "town.csv"
    csv.write_text("乡镇(街道),村(社区),网格,姓名,电话,身份,类别,地址,备注\n"
                   f"明水河镇,红星村,一,孙大爷,{OTHER_TOWN_RESIDENT},居民,老年人,红星村七组8号,\n"
                   f"明水河镇,,,钱值班,{OTHER_TOWN_DUTY},值班,,明水河镇政府,\n", encoding="utf-8")
    assert import_file(sample.r, csv, "CN").ok
    _sms(client, OTHER_TOWN_RESIDENT, "我要降压药")
    [theirs] = tickets.list_tickets(sample)
    _sms(client, RESIDENT, "我要买菜")
    ours = next(t for t in tickets.list_tickets(sample) if t.code != theirs.code)
    for command in (f"接 {theirs.code}", f"完成 {theirs.code}", f"派 {theirs.code} {DUTY}"):
        reply = _sms(client, DUTY, command)  # 归流河镇's duty officer
        assert "红星村七组8号" not in reply and "13900000061" not in reply, command
    after = tickets.get(sample, theirs.code)
    assert after is not None and after.status == "new" and not after.accepted_by
    # their own town's duty officer may, and ours may take ours
    assert "红星村七组8号" in _sms(client, OTHER_TOWN_DUTY, f"接 {theirs.code}")
    _sms(client, DUTY, f"接 {ours.code}")
    mine = tickets.get(sample, ours.code)
    assert mine is not None and mine.accepted_by == DUTY
    # a stranger's ticket (triage) is any duty officer's
    _sms(client, STRANGER, "家里没水了")
    triage = next(t for t in tickets.list_tickets(sample) if t.caller == STRANGER)
    _sms(client, OTHER_TOWN_DUTY, f"接 {triage.code}")
    taken = tickets.get(sample, triage.code)
    assert taken is not None and taken.accepted_by == OTHER_TOWN_DUTY


# --- 7. a captured text cannot be replayed as a new one by shifting fields into its sid ----------

def test_a_sid_shifted_to_keep_the_signature_is_refused_and_opens_nothing(
        client: FlaskClient, sample: Hotline) -> None:
    sid = "SM" + uuid.uuid4().hex
    captured = {"AccountSid": "AC" + "0" * 32, "Body": "我要降压药", "From": RESIDENT,
                "MessageSid": sid, "NumMedia": "0", "To": "+8610000000000"}
    signature = twilio_signature(PUBLIC_URL + "/twilio/sms", captured)
    first = post_twilio(client, "/twilio/sms", captured, signature=signature)
    assert first.status_code == 200 and "#" in first.get_data(as_text=True)
    # "NumMedia" + "0" moved into the sid: the signed string is the same
    shifted = {k: v for k, v in captured.items() if k != "NumMedia"}
    shifted["MessageSid"] = sid + "NumMedia0"
    assert twilio_signature(PUBLIC_URL + "/twilio/sms", shifted) == signature
    sample.r.delete(*sample.r.keys("hl:rate:*"))
    messages_before = sample.r.zcard("hl:msgs")
    again = post_twilio(client, "/twilio/sms", shifted, signature=signature)
    assert again.status_code == 400 and "MessageSid" in again.get_data(as_text=True)
    assert len(tickets.list_tickets(sample)) == 1
    assert sample.r.zcard("hl:msgs") == messages_before
    # other shapes Twilio never sends
    for bad in ("SM1", sid.upper(), "XX" + sid[2:], sid + "0", ""):
        form = captured | {"MessageSid": bad}
        assert post_twilio(client, "/twilio/sms", form).status_code == 400, bad
    assert post_twilio(client, "/twilio/sms", captured | {"SmsSid": "SM" + "f" * 32}).status_code == 400
    assert post_twilio(client, "/twilio/status", {"MessageSid": "SM1", "MessageStatus": "failed"}
                       ).status_code == 400
    assert post_twilio(client, "/twilio/status", {"CallSid": "CA1", "CallStatus": "completed"}
                       ).status_code == 400
    assert len(tickets.list_tickets(sample)) == 1


# --- 8. numbers are masked in URLs too ------------------------------------------------------------

@pytest.mark.parametrize("line", [
    '127.0.0.1 - - "GET /simulator/inbox?phone=%2B8613900000001 HTTP/1.1" 200 -',
    '"GET /simulator/inbox?phone=%2b8613900000001 HTTP/1.1" 200 -',
    "GET /simulator/inbox?phone=138%200000%201234",
    "GET /simulator/inbox?phone=%2B86-138-0000-1234",
    "GET /simulator/inbox?phone=%2B86%20138%200000%201234",
    "GET /simulator/inbox?phone=138+0000+1234&x=1",
])
def test_a_url_encoded_number_in_a_log_line_is_masked(line: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    logs.setup("INFO")
    caplog.set_level(logging.INFO)
    logging.getLogger("werkzeug").info("%s", line)
    [written] = [r.getMessage() for r in caplog.records]
    assert not re.search(r"\d{5}|\d{4}(?:%20|%2D|\+|-)\d{4}", written, re.IGNORECASE), written
    assert "****" in written


def test_ids_and_job_names_stay_readable_in_log_lines() -> None:
    line = "job sweep-1796097064 for SM0123456789abcdef0123456789abcdef, CA%s" % ("1" * 32)
    assert phones.mask_text(line) == line


# --- 10. hostile input gets a clear answer, never a traceback or a 500 ---------------------------

LEDGER_HEADER = "乡镇(街道),村(社区),网格,姓名,电话,身份,类别,地址,备注\n"
LEDGER_ROW = "归流河镇,联合村,第一网格,王芳,13800000003,队员,,联合村二组,{notes}\n"


def _broken_xlsx(tmp_path: Path, member: str) -> Path:
    from openpyxl import Workbook

    good = tmp_path / "good.xlsx"
    book = Workbook()
    book.active.append(["村(社区)", "网格", "姓名", "电话", "身份", "类别", "地址", "备注"])
    book.save(good)
    bad = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as out:
        for info in source.infolist():
            data = source.read(info.filename)
            out.writestr(info, b"<worksheet><sheetData><row><c>" if info.filename == member
                         else data)
    return bad


@pytest.mark.parametrize("member", ["xl/worksheets/sheet1.xml", "xl/workbook.xml",
                                    "[Content_Types].xml", "xl/styles.xml"])
def test_an_xlsx_with_bad_xml_is_refused_with_a_clear_line(hl: Hotline, tmp_path: Path,
                                                           member: str) -> None:
    path = _broken_xlsx(tmp_path, member)
    with pytest.raises(RegistryFileError, match="not a readable XLSX file"):
        import_file(hl.r, path, "CN")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "REDIS_"))}
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "registry", "import", str(path)],
                          env=env | {"REDIS_URL": hl.url}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stderr
    assert "not a readable XLSX file" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line


def test_imports_are_capped_in_cell_size_and_rows(hl: Hotline, tmp_path: Path) -> None:
    huge = tmp_path / "huge.csv"
    huge.write_text(LEDGER_HEADER + LEDGER_ROW.format(notes="很" * 5000), encoding="utf-8")
    with pytest.raises(RegistryFileError, match="row 2: the notes cell is longer than 2000"):
        import_file(hl.r, huge, "CN")
    many = tmp_path / "many.csv"
    many.write_text(LEDGER_HEADER + "".join(
        f"归流河镇,联合村,第一网格,人{i},1380001{i:04d},队员,,,\n" for i in range(30)),
        encoding="utf-8")
    with pytest.raises(RegistryFileError, match="more than 20 rows"):
        import_file(hl.r, many, "CN", max_rows=20)
    assert import_file(hl.r, many, "CN", max_rows=30).ok
    assert Settings.from_env({"HOTLINE_IMPORT_MAX_ROWS": "50", "HOTLINE_IMPORT_MAX_CELL": "9"}
                             ).import_max_cell == 9
    big = tmp_path / "big.xlsx"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as out:  # 100 MB of one cell, zipped
        out.writestr("xl/sharedStrings.xml", b"<sst>" + b"a" * (100 * 1024 * 1024) + b"</sst>")
    with pytest.raises(RegistryFileError, match="larger than"):
        import_file(hl.r, big, "CN")


def test_a_csv_with_two_byte_order_marks_keeps_its_first_column(hl: Hotline,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_bytes(("\ufeff\ufeff" + LEDGER_HEADER + LEDGER_ROW.format(notes="")).encode())
    assert import_file(hl.r, path, "CN").ok
    person = registry.person(hl.r, "+8613800000003")
    assert person is not None and person.town == "归流河镇"


def test_deeply_nested_signed_android_json_is_a_400(sample: Hotline) -> None:
    settings = sample.settings.with_overrides(android_gateway_signing_key="k3y")
    client = create_app(settings, url=sample.url).test_client()
    for depth in (100, 100_000):
        body = ('{"event": "sms:received", "payload": ' + "[" * depth + "]" * depth + "}").encode()
        stamp = str(int(time.time()))
        answer = client.post("/android/webhook", data=body, content_type="application/json",
                             headers={"X-Timestamp": stamp,
                                      "X-Signature": android_events.signature("k3y", body, stamp)})
        assert answer.status_code == 400, (depth, answer.status_code)
        assert "deep" in answer.get_json()["error"]
    assert tickets.list_tickets(sample) == []


def test_half_a_character_in_the_simulators_json_is_a_400(people: Hotline) -> None:
    app = create_app(people.settings.with_overrides(simulator=True), url=people.url)
    client = app.test_client()
    login(client, "admin")
    csrf = TOKEN.search(client.get("/simulator").get_data(as_text=True))
    assert csrf
    for body in ('{"from": "+8613900000001", "body": "\\ud800 要降压药"}',
                 '{"from": "+8613900000001\\udfff", "body": "1"}',
                 '{"from": "+8613900000001", "body": ' + "[" * 50000 + "]" * 50000 + "}"):
        answer = client.post("/simulator/sms", data=body, content_type="application/json",
                             headers={"X-CSRFToken": csrf.group(1)})
        assert answer.status_code == 400, answer.status_code
    assert tickets.list_tickets(people) == []


def test_an_office_behind_one_address_is_not_locked_out_by_a_sprayer_there(
        app: Flask, people: Hotline, one_window: None) -> None:
    head = app.test_client()
    assert _guess(head, "192.0.2.60", name="bai", password=PASSWORD) == 302  # logged in before
    sprayer = app.test_client()
    for i in range(accounts.LOGIN_TRIES_ADDRESS):
        _guess(sprayer, "192.0.2.60", name=f"user{i}")  # the same office NAT
    assert _guess(sprayer, "192.0.2.60", name="zhang", password=PASSWORD) == 401  # no cookie
    assert _guess(head, "192.0.2.60", name="bai", password=PASSWORD) == 302
