"""Property-based bad input: any form fields, any text, any ledger file; never a 500, never a stray ticket."""

from __future__ import annotations

import uuid
from pathlib import Path

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import registry, sms_grammar, tickets
from gateway.context import Hotline
from gateway.registry_file import RegistryFileError, import_file
from gateway.store import KEYS
from tests.conftest import RESIDENT, VOLUNTEER, post_twilio

FIELDS = ("From", "To", "Body", "Digits", "CallSid", "MessageSid", "SmsSid", "CallStatus",
          "MessageStatus", "RecordingUrl", "RecordingSid", "SpeechResult", "ErrorCode", "Direction")
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
forms = st.dictionaries(st.sampled_from(FIELDS), text, max_size=8)
quick = settings(max_examples=120, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def ticket_count(hl: Hotline) -> int:
    return int(hl.r.zcard(KEYS.tickets))


@quick
@given(form=forms, route=st.sampled_from([
    "/twilio/voice", "/twilio/voice/menu?step=1", "/twilio/voice/confirm?step=2",
    "/twilio/voice/name?step=3", "/twilio/voice/recording", "/twilio/voice/nonsense?step=x",
    "/twilio/status"]))
def test_any_voice_or_status_form_gets_an_answer_and_no_stray_ticket(
        client: FlaskClient, sample: Hotline, form: dict[str, str], route: str) -> None:
    form.pop("CallStatus", None)  # a final CallStatus legitimately makes a callback ticket
    before = ticket_count(sample)
    response = post_twilio(client, route, form)
    assert response.status_code in (200, 204, 400, 404), response.status_code
    assert ticket_count(sample) == before


@quick
@given(form=forms)
def test_any_sms_form_gets_an_answer_and_a_volunteer_never_opens_a_ticket(
        client: FlaskClient, sample: Hotline, form: dict[str, str]) -> None:
    form["From"] = VOLUNTEER
    before = ticket_count(sample)
    response = post_twilio(client, "/twilio/sms", form)
    if response.status_code == 400:  # not Twilio's MessageSid: refused, nothing changed
        assert "MessageSid" in response.get_data(as_text=True)
        assert not sample.r.keys("hl:msg*")
        return
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("<?xml")
    assert ticket_count(sample) == before


@quick
@given(body=text)
def test_a_resident_text_opens_at_most_one_ticket(client: FlaskClient, sample: Hotline,
                                                  body: str) -> None:
    sample.r.delete(*sample.r.keys("hl:rate:*") or ["-"])  # the per-number limit is not under test
    before = ticket_count(sample)
    response = post_twilio(client, "/twilio/sms", {"From": RESIDENT, "Body": body,
                                                   "MessageSid": f"SM{uuid.uuid4().hex}"})
    assert response.status_code == 200
    assert ticket_count(sample) - before <= 1
    for t in tickets.list_tickets(sample, limit=3):
        assert t.code.isdigit()


@settings(max_examples=400, deadline=None)
@given(body=text, volunteer=st.booleans())
def test_the_grammar_reads_any_text_without_failing(body: str, volunteer: bool) -> None:
    command = sms_grammar.parse(body, volunteer=volunteer)
    assert command.verb in sms_grammar.VERBS
    assert command.code == "" or command.code.isdigit()


@quick
@given(content=st.binary(max_size=600), suffix=st.sampled_from([".csv", ".xlsx"]))
def test_a_fuzzed_ledger_file_is_refused_cleanly(hl: Hotline, tmp_path: Path, content: bytes,
                                                 suffix: str) -> None:
    path = tmp_path / f"ledger{suffix}"
    path.write_bytes(content)
    try:
        report = import_file(hl.r, path, "CN")
    except RegistryFileError:
        report = None
    if report is None or not report.ok:
        assert registry.is_empty(hl.r)


header = "村(社区),网格,姓名,电话,身份,类别,地址,备注\n"
cells = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",),
                                       exclude_characters="\x00"), max_size=20)


@quick
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=9), max_size=6))
def test_fuzzed_ledger_rows_import_whole_or_not_at_all(hl: Hotline, tmp_path: Path,
                                                       rows: list[list[str]]) -> None:
    import csv
    import io

    hl.r.flushall()
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    path = tmp_path / "ledger.csv"
    path.write_text(header + buffer.getvalue(), encoding="utf-8")
    try:
        report = import_file(hl.r, path, "CN")
    except RegistryFileError:
        assert registry.is_empty(hl.r)
        return
    if report.ok:
        assert int(hl.r.scard(KEYS.people)) == report.added
    else:
        assert registry.is_empty(hl.r)
        assert all(isinstance(n, int) and reason for n, reason in report.errors)
