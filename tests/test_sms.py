"""The SMS hotline end to end: signed texts from residents and volunteers, through workers, to the outbox."""

from __future__ import annotations

import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway import clock, messages, notices, registry, tickets
from gateway.app import create_app
from gateway.context import Hotline
from gateway.registry import Person
from gateway.registry_file import store_people
from gateway.store import connect
from gateway.texts import segments
from tests.conftest import (
    DUTY,
    GRID_WORKER,
    HEAD,
    LANDLINE_RESIDENT,
    LEADER,
    OTHER_GRID_LEADER,
    RESIDENT,
    STRANGER,
    VOLUNTEER,
    VOLUNTEER2,
    drain,
    post_twilio,
)

OTHER_VILLAGE_VOLUNTEER = "+8613800000032"  # 乌云, 团结村
LANDLINE_CONTACT = "+8613900000102"  # 李红, contact of 李德福
TEAM = (LEADER, GRID_WORKER, VOLUNTEER, VOLUNTEER2)  # 联合村 第一网格


def text(client: FlaskClient, sender: str, body: str, sid: str | None = None) -> str | None:
    """Send a signed inbound SMS; return the reply in the TwiML (None for an empty Response)."""
    params = {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32,
              "From": sender, "To": "+8610000000000", "Body": body, "NumMedia": "0"}
    response = post_twilio(client, "/twilio/sms", params)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.data)
    assert root.tag == "Response"
    found = root.findall("Message")
    assert len(found) <= 1
    return found[0].text if found else None


def inbox(hl: Hotline, phone: str, kind: str | None = None) -> list[str]:
    """Bodies the outbox channel delivered to `phone`, oldest first."""
    return [m.body for m in reversed(messages.outbox(hl, phone)) if kind in (None, m.kind)]


def queued_to(hl: Hotline, phone: str) -> list[messages.Message]:
    return [m for m in messages.list_messages(hl, limit=1000) if m.to == phone]


def only_ticket(hl: Hotline) -> tickets.Ticket:
    found = tickets.list_tickets(hl)
    assert len(found) == 1, [t.code for t in found]
    return found[0]


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """A clock the test moves by hand, starting mid-minute so no window ends by accident."""
    moment = [datetime(2024, 1, 15, 9, 0, 20, tzinfo=UTC)]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    yield moment


def open_by_text(hl: Hotline, client: FlaskClient, body: str = "需要降压药") -> tickets.Ticket:
    reply = text(client, RESIDENT, body)
    assert reply is not None
    ticket = only_ticket(hl) if len(tickets.list_tickets(hl)) == 1 else tickets.list_tickets(hl)[0]
    assert f"#{ticket.code}" in reply
    return ticket


# --- the whole loop ---------------------------------------------------------------------------

def test_resident_text_to_ticket_to_volunteer_to_done_and_thanks(sample: Hotline,
                                                                client: FlaskClient) -> None:
    """The issue's done-when, every step through signed webhooks and the outbox channel."""
    reply = text(client, RESIDENT, "需要降压药，家里没有了")
    ticket = only_ticket(sample)
    assert reply is not None and f"#{ticket.code}" in reply and segments(reply) == 1
    assert (ticket.status, ticket.category, ticket.channel) == ("new", "medicine", "sms")
    assert ticket.text == "需要降压药,家里没有了"

    drain(sample)  # the team is offered the ticket at once
    for member in TEAM:
        offers = inbox(sample, member, "offer")
        assert len(offers) == 1 and f"#{ticket.code}" in offers[0], member
    assert inbox(sample, RESIDENT) == []  # the resident's confirmation was the TwiML reply

    reply = text(client, VOLUNTEER, f"接 {ticket.code}")
    assert reply is not None and f"#{ticket.code}" in reply
    assert "联合村一组12号" in reply and "13900000001" in reply  # where to go, whom to ring
    taken = tickets.get(sample, ticket.code)
    assert taken is not None and (taken.status, taken.accepted_by) == ("accepted", VOLUNTEER)

    drain(sample)
    told = inbox(sample, RESIDENT)
    assert len(told) == 1
    assert f"#{ticket.code}" in told[0] and "王芳" in told[0] and "13800000003" in told[0]
    for member in (LEADER, GRID_WORKER, VOLUNTEER2):
        notes = inbox(sample, member, "taken")
        assert len(notes) == 1 and "王芳" in notes[0] and f"#{ticket.code}" in notes[0]
    assert inbox(sample, VOLUNTEER, "taken") == []

    reply = text(client, VOLUNTEER, f"完成 {ticket.code}")
    assert reply is not None and f"#{ticket.code}" in reply
    done = tickets.get(sample, ticket.code)
    assert done is not None and done.status == "done"

    drain(sample)
    told = inbox(sample, RESIDENT)
    assert len(told) == 2 and f"#{ticket.code}" in told[1] and "办结" in told[1]
    whats = [e["what"] for e in tickets.history(sample, ticket.code)]
    assert whats[:3] == ["opened", "offered", "accepted"] and "done" in whats


def test_a_resident_without_a_mobile_has_their_contact_told(sample: Hotline,
                                                            client: FlaskClient) -> None:
    ticket = tickets.open_ticket(sample, LANDLINE_RESIDENT, "doctor", "voice")
    drain(sample)
    text(client, GRID_WORKER, f"ACCEPT {ticket.code}")
    drain(sample)
    told = inbox(sample, LANDLINE_CONTACT)
    assert len(told) == 1 and "李德福" in told[0] and "李建国" in told[0]
    assert f"#{ticket.code}" in told[0] and "13800000002" in told[0]
    assert queued_to(sample, LANDLINE_RESIDENT) == []  # a landline is never texted
    text(client, GRID_WORKER, f"DONE {ticket.code}")
    drain(sample)
    assert "办结" in inbox(sample, LANDLINE_CONTACT)[-1]


def test_an_english_speaking_volunteer_is_answered_in_english(sample: Hotline,
                                                              client: FlaskClient) -> None:
    store_people(sample.r, [Person(phone="+8613800000009", name="Anna", role="volunteer",
                                   village="联合村", town="归流河镇", grid="第一网格",
                                   language="en")])
    ticket = open_by_text(sample, client)
    drain(sample)
    assert "Reply ACCEPT" in inbox(sample, "+8613800000009", "offer")[0]
    reply = text(client, "+8613800000009", f"accept {ticket.code}")
    assert reply is not None and reply.startswith(f"Yours: help #{ticket.code}")
    drain(sample)
    assert "Anna" in inbox(sample, RESIDENT)[0] and "已有人接" in inbox(sample, RESIDENT)[0]


# --- the volunteers' grammar over the wire ----------------------------------------------------

@pytest.mark.parametrize("form", ["接 {}", "{} 接", "ACCEPT {}", "接＃{}", "　{}，接。", "accept#{}"])
def test_every_written_form_of_take_takes_the_ticket(sample: Hotline, client: FlaskClient,
                                                     form: str) -> None:
    ticket = open_by_text(sample, client)
    wide = form.format(ticket.code)
    if "＃" in form:
        wide = form.format(ticket.code.translate(str.maketrans("0123456789", "０１２３４５６７８９")))
    text(client, VOLUNTEER, wide)
    taken = tickets.get(sample, ticket.code)
    assert taken is not None and taken.accepted_by == VOLUNTEER


@pytest.mark.parametrize("bare", ["接", "1", "Y"])
def test_a_bare_accept_takes_the_one_pending_offer(sample: Hotline, client: FlaskClient,
                                                   bare: str) -> None:
    ticket = open_by_text(sample, client)
    drain(sample)
    reply = text(client, VOLUNTEER2, bare)
    assert reply is not None and f"#{ticket.code}" in reply
    taken = tickets.get(sample, ticket.code)
    assert taken is not None and taken.accepted_by == VOLUNTEER2


def test_a_bare_accept_with_two_offers_asks_which_and_takes_nothing(sample: Hotline,
                                                                    client: FlaskClient) -> None:
    first = tickets.open_ticket(sample, RESIDENT, "food", "voice")
    second = tickets.open_ticket(sample, LANDLINE_RESIDENT, "doctor", "voice")
    drain(sample)
    reply = text(client, VOLUNTEER, "接")
    assert reply is not None and f"#{first.code}" in reply and f"#{second.code}" in reply
    assert all(t.status == "notified" for t in tickets.list_tickets(sample))


def test_a_bare_accept_with_no_offer_says_so(sample: Hotline, client: FlaskClient) -> None:
    reply = text(client, VOLUNTEER, "接")
    assert reply is not None and "没有" in reply
    assert tickets.list_tickets(sample) == []


def test_two_volunteers_racing_by_sms_give_one_taker_and_tell_the_other_who(
        sample: Hotline, app: Flask) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    racers = {VOLUNTEER: "", VOLUNTEER2: ""}
    start = threading.Barrier(len(racers))

    def race(phone: str) -> None:
        client = app.test_client()
        start.wait()
        racers[phone] = text(client, phone, f"接 {ticket.code}") or ""

    threads = [threading.Thread(target=race, args=(p,)) for p in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = tickets.get(sample, ticket.code)
    assert taken is not None and taken.accepted_by in racers
    winner = taken.accepted_by
    loser = next(p for p in racers if p != winner)
    winner_name = registry.person(sample.r, winner).name  # type: ignore[union-attr]
    assert "已由" in racers[loser] and winner_name in racers[loser]
    assert winner[3:] in racers[loser]  # the winner's number, as dialled at home
    assert "办完回复" in racers[winner]
    accepted = [e for e in tickets.history(sample, ticket.code) if e["what"] == "accepted"]
    assert len(accepted) == 1


def test_texts_from_one_resident_arriving_together_open_one_ticket(sample: Hotline,
                                                                   app: Flask) -> None:
    start = threading.Barrier(5)

    def send(i: int) -> None:
        client = app.test_client()
        start.wait()
        text(client, RESIDENT, f"需要降压药 {i}")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(only_ticket(sample).text.split("\n")) == 5


def test_a_late_taker_is_told_who_has_it(sample: Hotline, client: FlaskClient) -> None:
    ticket = open_by_text(sample, client)
    text(client, VOLUNTEER, f"接 {ticket.code}")
    reply = text(client, GRID_WORKER, f"{ticket.code} 接")
    assert reply == f"求助#{ticket.code}已由王芳（13800000003）接单，谢谢您。"
    again = text(client, VOLUNTEER, f"接 {ticket.code}")
    assert again is not None and "已经是您接的单" in again


def test_release_hands_the_ticket_back_and_the_team_is_offered_it_again(
        sample: Hotline, client: FlaskClient) -> None:
    ticket = open_by_text(sample, client)
    drain(sample)
    text(client, VOLUNTEER, f"接 {ticket.code}")
    reply = text(client, VOLUNTEER, f"退 {ticket.code}")
    assert reply is not None and f"#{ticket.code}" in reply
    back = tickets.get(sample, ticket.code)
    assert back is not None and back.status in tickets.WAITING and back.accepted_by == ""
    drain(sample)
    assert len(inbox(sample, VOLUNTEER2, "offer")) == 2
    text(client, VOLUNTEER2, f"RELEASE {ticket.code}")  # not theirs: refused, nothing changes
    still = tickets.get(sample, ticket.code)
    assert still is not None and still.status in tickets.WAITING


def test_list_names_my_open_tickets_and_the_offers_waiting(sample: Hotline,
                                                           client: FlaskClient) -> None:
    mine = tickets.open_ticket(sample, RESIDENT, "food", "voice")
    waiting = tickets.open_ticket(sample, LANDLINE_RESIDENT, "doctor", "voice")
    drain(sample)
    text(client, VOLUNTEER, f"接 {mine.code}")
    reply = text(client, VOLUNTEER, "任务")
    assert reply is not None
    assert f"#{mine.code}送餐送菜王秀英" in reply and f"待接：#{waiting.code}" in reply
    done_reply = text(client, VOLUNTEER, "完成")  # the only ticket in hand: no code needed
    assert done_reply is not None and f"#{mine.code}" in done_reply
    assert text(client, VOLUNTEER, "LIST") == f"您没有未办完的单。\n待接：#{waiting.code}。"


def test_what_the_resident_adds_after_the_take_reaches_the_taker(sample: Hotline,
                                                                  client: FlaskClient) -> None:
    ticket = open_by_text(sample, client)
    text(client, VOLUNTEER, f"接 {ticket.code}")
    text(client, RESIDENT, "还要一袋大米")
    drain(sample)
    notes = inbox(sample, VOLUNTEER, "added")
    assert notes == [f"求助#{ticket.code}王秀英补充：还要一袋大米"]
    drain(sample)  # a re-run sends nothing twice
    assert len(inbox(sample, VOLUNTEER, "added")) == 1


def test_follow_up_jobs_run_twice_send_once_and_a_stale_one_sends_nothing(
        sample: Hotline, client: FlaskClient) -> None:
    from workers import followups

    ticket = open_by_text(sample, client)
    text(client, VOLUNTEER, f"接 {ticket.code}")
    drain(sample)
    def sent() -> int:
        return sum(m.direction == "out" for m in messages.list_messages(sample, limit=1000))

    before = sent()
    assert before == 1  # taken before the offer job ran: only the resident was told
    assert followups.taken(ticket.code, VOLUNTEER) == "sent 0"
    text(client, VOLUNTEER, f"退 {ticket.code}")
    assert followups.taken(ticket.code, VOLUNTEER) == "nothing to do"  # released since
    assert followups.done(ticket.code, VOLUNTEER) == "nothing to do"
    assert sent() == before


def test_done_by_someone_who_did_not_take_it_is_refused(sample: Hotline,
                                                       client: FlaskClient) -> None:
    ticket = open_by_text(sample, client)
    text(client, VOLUNTEER, f"接 {ticket.code}")
    reply = text(client, VOLUNTEER2, f"完成 {ticket.code}")
    assert reply is not None and "王芳" in reply
    still = tickets.get(sample, ticket.code)
    assert still is not None and still.status == "accepted"


# --- leaders and heads ------------------------------------------------------------------------

def test_a_leader_assigns_by_name_and_the_assignee_and_resident_are_told(
        sample: Hotline, client: FlaskClient) -> None:
    ticket = open_by_text(sample, client)
    drain(sample)
    reply = text(client, LEADER, f"派 {ticket.code} 王芳")
    assert reply == f"求助#{ticket.code}已派给王芳（13800000003），会短信通知。"
    drain(sample)
    got = inbox(sample, VOLUNTEER, "assigned")
    assert len(got) == 1 and "孙玉梅派给您" in got[0] and "联合村一组12号" in got[0]
    assert "王芳" in inbox(sample, RESIDENT)[0]

    reply = text(client, HEAD, f"ASSIGN {ticket.code} 138 0000 0004")  # by phone, reassigning
    assert reply is not None and "赵磊" in reply
    drain(sample)
    assert "改派给赵磊" in inbox(sample, VOLUNTEER, "reassigned")[0]
    assert "赵磊" in inbox(sample, RESIDENT)[-1]
    t = tickets.get(sample, ticket.code)
    assert t is not None and t.accepted_by == VOLUNTEER2


def test_assigning_to_someone_outside_the_village_changes_nothing(sample: Hotline,
                                                                  client: FlaskClient) -> None:
    ticket = open_by_text(sample, client)
    reply = text(client, LEADER, f"派 {ticket.code} 乌云")  # 团结村's volunteer
    assert reply is not None and "没有找到" in reply
    reply = text(client, LEADER, f"派 {ticket.code} 王<b>&x")
    assert reply is not None and '"王<b>&x"' in reply  # escaped in the TwiML, read back intact
    t = tickets.get(sample, ticket.code)
    assert t is not None and t.status == "new" and t.accepted_by == ""


def test_a_volunteer_cannot_assign_or_send_notices(sample: Hotline, client: FlaskClient) -> None:
    ticket = open_by_text(sample, client)
    assert "只有队长" in (text(client, VOLUNTEER, f"派 {ticket.code} 赵磊") or "")
    assert "只有队长" in (text(client, VOLUNTEER, "通知 明天停水") or "")
    assert notices.list_notices(sample) == []
    t = tickets.get(sample, ticket.code)
    assert t is not None and t.accepted_by == ""


def test_a_leader_closes_a_ticket_someone_else_took_and_they_are_told(
        sample: Hotline, client: FlaskClient) -> None:
    ticket = open_by_text(sample, client)
    text(client, VOLUNTEER, f"接 {ticket.code}")
    reply = text(client, OTHER_GRID_LEADER, f"完成 {ticket.code}")  # same village, other grid
    assert reply is not None and "已办结" in reply
    drain(sample)
    assert "刘洋" in inbox(sample, VOLUNTEER, "closed")[0]
    assert "办结" in inbox(sample, RESIDENT)[-1]


def test_a_head_sends_a_notice_to_the_team_and_to_everyone(sample: Hotline,
                                                          client: FlaskClient) -> None:
    reply = text(client, HEAD, "通知 明天9点在村委会接种疫苗。请带身份证")
    found = notices.list_notices(sample)
    assert len(found) == 1
    notice = found[0]
    assert reply == f"第{notice.id}号通知已保存，正在发给本村队员：明天9点在村委会接种疫苗"
    assert (notice.audience, notice.village, notice.author) == ("team", "联合村", HEAD)
    assert notice.body == "明天9点在村委会接种疫苗。请带身份证"

    reply = text(client, LEADER, "NOTICE ALL 明天停电，请备好蜡烛")
    latest = notices.list_notices(sample)[0]
    assert latest.audience == "all" and f"第{latest.id}号" in (reply or "")
    drain(sample)
    assert len(inbox(sample, VOLUNTEER, "notice")) == 2
    assert len(inbox(sample, RESIDENT, "notice")) == 1  # residents only get the one to all
    assert "通知内容" in (text(client, HEAD, "通知") or "")  # no text: how to write one
    assert len(notices.list_notices(sample)) == 2


def test_help_and_unknown_commands_get_the_short_help(sample: Hotline, client: FlaskClient) -> None:
    volunteer_help = text(client, VOLUNTEER, "帮助")
    assert volunteer_help is not None and "接 1042" in volunteer_help and segments(volunteer_help) == 1
    assert text(client, VOLUNTEER, "你好，在吗") == volunteer_help
    leader_help = text(client, LEADER, "HELP")
    assert leader_help is not None and "派 1042" in leader_help and "通知全体" in leader_help
    assert tickets.list_tickets(sample) == []  # a volunteer's chatter opens nothing


# --- residents --------------------------------------------------------------------------------

def test_a_menu_digit_opens_a_ticket_of_that_category(sample: Hotline, client: FlaskClient) -> None:
    reply = text(client, RESIDENT, "３")
    ticket = only_ticket(sample)
    assert ticket.category == "doctor"
    assert reply == f"已收到求助#{ticket.code}（看病就医），队员会尽快联系您。急症请拨120。"


def test_help_returns_the_menu_and_opens_nothing(sample: Hotline, client: FlaskClient) -> None:
    reply = text(client, RESIDENT, "帮助")
    assert reply is not None and "1送药" in reply and "120" in reply and segments(reply) == 1
    assert tickets.list_tickets(sample) == []


def test_writing_again_adds_to_the_open_ticket_until_the_window_ends(
        sample: Hotline, client: FlaskClient, now: list[datetime]) -> None:
    first = open_by_text(sample, client, "需要降压药")
    reply = text(client, RESIDENT, "是硝苯地平，一盒就够")
    assert reply is not None and f"#{first.code}" in reply and "补充" in reply
    text(client, RESIDENT, "是硝苯地平，一盒就够")  # the same words twice are kept once
    t = only_ticket(sample)
    assert t.text == "需要降压药\n是硝苯地平,一盒就够"
    now[0] += timedelta(seconds=sample.settings.append_window + 60)
    text(client, RESIDENT, "家里停电了")
    assert len(tickets.list_tickets(sample)) == 2


def test_an_unknown_sender_is_a_resident_whose_ticket_goes_to_the_duty_list(
        sample: Hotline, client: FlaskClient) -> None:
    reply = text(client, STRANGER, "我家停电了")
    ticket = only_ticket(sample)
    assert (ticket.category, ticket.village_id) == ("utilities", tickets.TRIAGE)
    assert reply is not None and "姓名和住址" in reply and segments(reply) == 1
    assert "补充" in (text(client, STRANGER, "张三，联合村五组8号") or "")
    assert "张三" in only_ticket(sample).text
    drain(sample)
    assert len(inbox(sample, DUTY, "offer")) == 1
    text(client, STRANGER, f"接 {ticket.code}")  # a stranger's 接 takes nothing
    t = tickets.get(sample, ticket.code)
    assert t is not None and t.accepted_by == ""
    assert "周海涛" not in "".join(inbox(sample, STRANGER))
    text(client, DUTY, f"接 {ticket.code}")  # the township duty list handles triage
    drain(sample)
    assert "周海涛" in inbox(sample, STRANGER)[-1]


def test_stop_silences_every_text_but_the_confirmation_and_start_resumes(
        sample: Hotline, client: FlaskClient) -> None:
    reply = text(client, RESIDENT, "退订")
    assert reply is not None and "START" in reply and segments(reply) == 1
    assert messages.opted_out(sample, RESIDENT)
    assert text(client, RESIDENT, "需要降压药") is None  # opened, but no reply to an opted-out number
    ticket = only_ticket(sample)
    drain(sample)
    text(client, VOLUNTEER, f"接 {ticket.code}")
    drain(sample)
    told = queued_to(sample, RESIDENT)
    assert [m.status for m in told] == ["optedout"] and inbox(sample, RESIDENT) == []

    reply = text(client, RESIDENT, "START")
    assert reply is not None and "恢复" in reply
    assert not messages.opted_out(sample, RESIDENT)
    text(client, VOLUNTEER, f"完成 {ticket.code}")
    drain(sample)
    assert "办结" in inbox(sample, RESIDENT)[-1]


def test_a_volunteer_who_texts_stop_is_offered_nothing(sample: Hotline, client: FlaskClient) -> None:
    assert "START" in (text(client, VOLUNTEER, "STOP") or "")
    open_by_text(sample, client)
    drain(sample)
    assert inbox(sample, VOLUNTEER) == [] and len(inbox(sample, VOLUNTEER2)) == 1


def test_the_sim_channel_queues_the_stop_confirmation_as_the_one_text_still_sent(
        sample: Hotline) -> None:
    from gateway import conversation

    reply = conversation.handle_text(sample, "13900000001", "STOP", channel="gammu")
    message = conversation.queue_reply(sample, "13900000001", reply)
    assert message is not None and (message.kind, message.status) == ("optout", "queued")
    drain(sample)
    assert inbox(sample, RESIDENT) == [reply]


# --- delivery twice, floods, and hostile texts ------------------------------------------------

def test_the_same_message_sid_twice_changes_nothing_the_second_time(sample: Hotline,
                                                                    client: FlaskClient) -> None:
    first = text(client, RESIDENT, "需要降压药", sid="SM" + "0123" * 8)
    again = text(client, RESIDENT, "需要降压药", sid="SM" + "0123" * 8)
    assert first is not None and again is None
    assert len(tickets.list_tickets(sample)) == 1
    inbound = [m for m in messages.list_messages(sample) if m.direction == "in"]
    assert len(inbound) == 1 and inbound[0].provider_id == "SM" + "0123" * 8


def test_a_failed_handling_unmarks_the_sid_so_twilios_retry_is_handled(
        sample: Hotline, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import conversation

    real = conversation._say

    def broken(*args: object, **kwargs: object) -> str:
        raise ConnectionError("redis went away")  # after the text was marked seen and stored

    monkeypatch.setattr(conversation, "_say", broken)
    with pytest.raises(ConnectionError):
        text(client, RESIDENT, "需要降压药", sid="SM" + "0456" * 8)
    monkeypatch.setattr(conversation, "_say", real)
    reply = text(client, RESIDENT, "需要降压药", sid="SM" + "0456" * 8)
    ticket = only_ticket(sample)
    assert reply is not None and f"#{ticket.code}" in reply
    assert ticket.text == "需要降压药"  # the retry found the ticket, and added nothing twice


def test_a_residents_request_for_help_costs_one_redis_command(sample: Hotline) -> None:
    hl = Hotline(sample.settings.with_overrides(ledger_refresh=60))
    client = create_app(hl.settings, hl.url).test_client()
    text(client, "+8613700000001", "需要降压药")  # loads the ledger copy and the script

    marker = connect(sample.url)
    marker.ping()  # connected before the watch starts: its only command seen will be the ECHO
    with sample.r.monitor() as monitor:
        reply = text(client, STRANGER, "1 需要降压药")
        marker.echo("done")
        sent = []
        while (seen := monitor.next_command())["command"] != "ECHO done":
            if seen["client_type"] != "lua":  # commands a script runs are not round trips
                sent.append(seen["command"].split()[0])
    assert sent == ["EVALSHA"]  # checked, counted, stored and opened in one round trip
    ticket = next(t for t in tickets.list_tickets(sample) if t.caller == STRANGER)
    assert reply is not None and f"#{ticket.code}" in reply
    assert sample.r.lrange("hl:tickets:intake", 0, -1) == [ticket.code, "1001"]
    drain(sample)
    assert sample.r.llen("hl:tickets:intake") == 0
    assert tickets.get(sample, ticket.code).status == "notified"  # type: ignore[union-attr]


def test_a_help_text_while_the_senders_last_text_is_handled_waits_and_joins_one_ticket(
        sample: Hotline, app: Flask) -> None:
    first = open_by_text(sample, app.test_client())
    lock = sample.r.lock(f"hl:lock:sms:{RESIDENT}", timeout=30, thread_local=False)
    assert lock.acquire()
    released_at: list[float] = []

    def release() -> None:
        released_at.append(time.monotonic())
        lock.release()

    released = threading.Timer(0.3, release)
    released.start()
    reply = text(app.test_client(), RESIDENT, "还要送点米")
    answered = time.monotonic()
    # It waited for the lock: the reply came after the release, however late the timer ran.
    assert released_at and answered >= released_at[0]
    released.join()
    assert reply is not None and f"#{first.code}" in reply
    assert only_ticket(sample).text.split("\n") == ["需要降压药", "还要送点米"]


def test_a_help_text_with_the_lock_held_and_no_open_ticket_opens_one_after_the_wait(
        sample: Hotline, app: Flask) -> None:
    lock = sample.r.lock(f"hl:lock:sms:{RESIDENT}", timeout=30, thread_local=False)
    assert lock.acquire()
    released = threading.Timer(0.2, lock.release)
    released.start()
    reply = text(app.test_client(), RESIDENT, "需要降压药")
    released.join()
    ticket = only_ticket(sample)
    assert reply is not None and f"#{ticket.code}" in reply
    assert ticket.village == "联合村"


def test_a_hundred_texts_in_a_minute_open_one_ticket_and_get_a_few_replies(
        sample: Hotline, client: FlaskClient, now: list[datetime]) -> None:
    replies = [text(client, RESIDENT, f"要药 {i}") for i in range(100)]
    assert len(tickets.list_tickets(sample)) == 1
    assert 1 <= sum(r is not None for r in replies) <= 3
    t = only_ticket(sample)
    assert len(t.text.split("\n")) == sample.settings.inbound_limit  # the rest were ignored
    now[0] += timedelta(seconds=60)
    assert text(client, RESIDENT, "还在吗") is not None  # a new minute: heard again


def test_a_volunteers_flood_gets_at_most_the_limit_of_replies(sample: Hotline, client: FlaskClient,
                                                              now: list[datetime]) -> None:
    replies = [text(client, VOLUNTEER, "任务") for _ in range(100)]
    assert sum(r is not None for r in replies) == sample.settings.inbound_limit


@pytest.mark.parametrize("body", [
    "", "   ", "\x00\x01\x1b[2J", "。。。！！", "A" * 2000, "接" * 2000, "😀" * 300,
    "<Response><Message>x</Message></Response>", "]]>&amp;", "%s %n {0} {{ 7*7 }}",
])
def test_garbled_texts_from_a_resident_never_fail(sample: Hotline, client: FlaskClient,
                                                  body: str) -> None:
    reply = text(client, RESIDENT, body)
    assert reply is not None and "49" not in reply
    for t in tickets.list_tickets(sample):
        assert len(t.text) <= 1000 and "\x00" not in t.text


def test_a_text_carrying_half_a_character_still_opens_one_clean_ticket(sample: Hotline) -> None:
    from gateway import conversation

    # A phone's JSON can carry a lone surrogate ("\\ud800"); no Redis key or record may choke.
    for _ in range(2):
        reply = conversation.handle_text(sample, RESIDENT, "1 要\ud800降压药", channel="android",
                                         provider_id="ev-\ud800-1", dedup="android-sms")
    ticket = only_ticket(sample)
    assert ticket.text == "要降压药"
    assert reply is None  # the second time: the same provider id, handled once
    stored = [m.body for m in messages.list_messages(sample) if m.direction == "in"]
    assert stored == ["1 要降压药"]


@pytest.mark.parametrize("body", ["", "\x00", "接 99999", "完成 99999", "退 99999", "派 99999 王芳",
                                  "接 " + "9" * 500, "Y" * 2000, "通知" + " " * 50, "1042 接种"])
def test_garbled_texts_from_a_volunteer_change_nothing(sample: Hotline, client: FlaskClient,
                                                       body: str) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "food", "voice")
    reply = text(client, LEADER, body)
    assert reply is not None
    after = tickets.get(sample, ticket.code)
    assert after is not None and after.status == "new" and notices.list_notices(sample) == []


def test_another_villages_volunteer_cannot_take_close_or_release(sample: Hotline,
                                                                 client: FlaskClient) -> None:
    ticket = open_by_text(sample, client)
    for body in (f"接 {ticket.code}", f"完成 {ticket.code}", f"退 {ticket.code}"):
        reply = text(client, OTHER_VILLAGE_VOLUNTEER, body)
        assert reply == f"求助#{ticket.code}不归您处理。有疑问请联系队长。"
    t = tickets.get(sample, ticket.code)
    assert t is not None and (t.status, t.accepted_by) == ("new", "")


def test_a_missing_or_unusable_sender_opens_nothing(sample: Hotline, client: FlaskClient) -> None:
    assert text(client, "", "需要降压药") is None
    assert text(client, "ALERTS", "需要降压药") is None
    assert tickets.list_tickets(sample) == []


def test_an_unsigned_text_is_refused_and_changes_nothing(sample: Hotline,
                                                        client: FlaskClient) -> None:
    params = {"MessageSid": "SM" + "1" * 32, "From": RESIDENT, "Body": "需要降压药"}
    assert post_twilio(client, "/twilio/sms", params, signature="bad").status_code == 403
    assert post_twilio(client, "/twilio/sms", params, token="wrong-token").status_code == 403
    assert tickets.list_tickets(sample) == [] and messages.list_messages(sample) == []
    assert text(client, RESIDENT, "需要降压药", sid="SM" + "1" * 32) is not None  # the sid was not burnt


def test_a_duty_officers_notice_goes_to_every_village_of_the_town(client: FlaskClient,
                                                                 sample: Hotline) -> None:
    from gateway import notices

    reply = text(client, DUTY, "通知 明天镇卫生院开放接种。请带身份证")
    assert reply is not None and "全镇各村队员" in reply
    [notice] = notices.list_notices(sample)
    assert notice.title == "明天镇卫生院开放接种"
    drain(sample)
    sent_to = {m.to for m in messages.list_messages(sample) if m.kind == "notice"}
    assert {LEADER, "+8613800000031"} <= sent_to  # a leader of 联合村 and one of 团结村
