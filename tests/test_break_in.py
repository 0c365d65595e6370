"""Issue 18: the holes found by trying to break in, each kept as the try that found it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from jinja2.sandbox import SecurityError

from gateway import texts
from gateway.app import create_app
from gateway.broadcast import page, script
from gateway.context import Hotline
from gateway.notices import Notice
from gateway.registry_file import import_file
from gateway.settings import ROOT
from tests.callsim import FlaskTransport, SimCall
from tests.conftest import AUTH_TOKEN, PUBLIC_URL, post_twilio

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
