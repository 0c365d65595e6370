"""The dashboard's 录音 page: who sees and changes which recordings, and a bad file changing nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway import accounts, prompt_store, prompts
from gateway.context import Hotline
from tests.audio_files import encoded
from tests.conftest import PASSWORD, require_tool
from tests.test_dashboard import login, text_of, token


@pytest.fixture(autouse=True)
def _ffmpeg() -> None:
    require_tool("ffmpeg", "ffmpeg")


def upload(client: FlaskClient, name: str, data: bytes, **form: str) -> str:
    """Post a file as the page's form does; the page the redirect leads to."""
    fields = {"csrf_token": token(client, "/prompts"), "language": "mn", **form,
              "file": (io.BytesIO(data), "recording.m4a")}
    answer = client.post(f"/prompts/{name}", data=fields, content_type="multipart/form-data")
    assert answer.status_code == 302, text_of(answer)
    return text_of(client.get(answer.headers["Location"]))


def test_a_head_uploads_replaces_and_removes_their_villages_recording(
        client: FlaskClient, people: Hotline, tmp_path: Path) -> None:
    login(client, "bai")  # head of 团结村
    page = text_of(client.get("/prompts?language=mn"))
    assert "团结村" in page and "送药请按1" in page and "没有录音：读出文字" in page
    good = encoded(tmp_path / "menu.m4a").read_bytes()
    page = upload(client, "menu", good, village="联合村")  # the form cannot pick another village
    assert "menu 的录音已保存" in page
    assert prompts.find(people.settings, "mn", "menu", "团结村").where == "village"  # type: ignore[union-attr]
    assert not (prompt_store.folder(people.settings, "mn", "联合村")).exists()
    assert 'id="prompt-menu" data-recording="village"' in page and "替换" in page
    client.post("/prompts/menu/delete", data={"csrf_token": token(client, "/prompts"),
                                              "language": "mn"})
    assert prompts.find(people.settings, "mn", "menu", "团结村") is None


def test_a_bad_file_is_refused_in_words_and_the_old_recording_stays(
        client: FlaskClient, people: Hotline, tmp_path: Path) -> None:
    prompt_store.add(people.settings, "greeting", encoded(tmp_path / "g.wav"), "mn", "团结村")
    before = (prompt_store.folder(people.settings, "mn", "团结村") / "greeting.mp3").read_bytes()
    login(client, "bai")
    page = upload(client, "greeting", b"this is not a sound file" * 40)
    assert "greeting 没有保存，原来的录音不变：这个文件打不开" in page
    assert (prompt_store.folder(people.settings, "mn", "团结村") / "greeting.mp3").read_bytes() \
        == before
    assert "没有选文件" in upload(client, "greeting", b"")


def test_an_admin_keeps_the_hotline_wide_set_and_only_looks_at_a_village(
        client: FlaskClient, people: Hotline, tmp_path: Path) -> None:
    login(client, "admin")
    assert "menu 的录音已保存" in upload(client, "menu", encoded(tmp_path / "m.wav").read_bytes())
    assert prompts.find(people.settings, "mn", "menu").where == "global"  # type: ignore[union-attr]
    village = text_of(client.get("/prompts?language=mn&village=团结村"))
    assert "全热线录音" in village and 'enctype="multipart/form-data"' not in village
    refused = client.post("/prompts/menu", content_type="multipart/form-data", data={
        "csrf_token": token(client, "/prompts"), "language": "mn", "village": "团结村",
        "file": (io.BytesIO(b"x"), "a.wav")})
    assert refused.status_code == 403
    assert prompts.find(people.settings, "mn", "menu", "团结村").where == "global"  # type: ignore[union-attr]


def test_a_leader_listens_but_cannot_change_and_a_post_without_csrf_changes_nothing(
        client: FlaskClient, people: Hotline, tmp_path: Path) -> None:
    accounts.create(people, "sun", "leader", PASSWORD, "联合村")
    login(client, "sun")
    page = text_of(client.get("/prompts"))
    assert "只有村干部能改本村的录音" in page and 'type="file"' not in page
    good = encoded(tmp_path / "m.wav").read_bytes()
    assert client.post("/prompts/menu", content_type="multipart/form-data", data={
        "csrf_token": token(client, "/prompts"), "language": "zh",
        "file": (io.BytesIO(good), "a.wav")}).status_code == 403
    login(client, "zhang")
    assert client.post("/prompts/menu", content_type="multipart/form-data", data={
        "language": "zh", "file": (io.BytesIO(good), "a.wav")}).status_code == 400
    assert prompts.find(people.settings, "zh", "menu", "联合村") is None
    assert not prompts.data_root(people.settings).exists()
