"""The text grammar: every way a feature phone writes a command reads as that command, nothing else does."""

from __future__ import annotations

import pytest

from gateway.sms_grammar import Command, guess_category, parse, printable

TEAM = [
    # take, in every form a volunteer's phone produces
    ("接 1042", Command("take", code="1042")),
    ("1042 接", Command("take", code="1042")),
    ("ACCEPT 1042", Command("take", code="1042")),
    ("accept 1042", Command("take", code="1042")),
    ("1042 accept", Command("take", code="1042")),
    ("接1042", Command("take", code="1042")),
    ("接 #1042", Command("take", code="1042")),
    ("接＃１０４２", Command("take", code="1042")),  # full-width # and digits
    ("　接　　1042　", Command("take", code="1042")),  # ideographic spaces
    ("接，1042。", Command("take", code="1042")),  # Chinese punctuation
    ("接：1042！", Command("take", code="1042")),
    ("#1042 接", Command("take", code="1042")),
    ("接 1042 马上到", Command("take", code="1042")),  # words after the code are ignored
    ("接 01042", Command("take", code="1042")),
    # code-less take: resolved by the conversation when exactly one offer is pending
    ("接", Command("take")),
    ("1", Command("take")),
    ("１", Command("take")),
    ("Y", Command("take")),
    ("y。", Command("take")),
    ("ACCEPT", Command("take")),
    # done and release
    ("完成 1042", Command("done", code="1042")),
    ("1042完成", Command("done", code="1042")),
    ("DONE 1042", Command("done", code="1042")),
    ("Done #1042.", Command("done", code="1042")),
    ("完成", Command("done")),
    ("退 1042", Command("release", code="1042")),
    ("1042 退", Command("release", code="1042")),
    ("RELEASE 1042", Command("release", code="1042")),
    ("退", Command("release")),
    # the rest of the grammar
    ("任务", Command("list")),
    ("LIST", Command("list")),
    ("list.", Command("list")),
    ("帮助", Command("help")),
    ("HELP", Command("help")),
    ("？", Command("help")),
    ("STOP", Command("stop")),
    ("退订", Command("stop")),
    ("START", Command("start")),
    ("派 1042 孙玉梅", Command("assign", code="1042", arg="孙玉梅")),
    ("派1042孙玉梅", Command("assign", code="1042", arg="孙玉梅")),
    ("1042 派 王芳", Command("assign", code="1042", arg="王芳")),
    ("ASSIGN 1042 13800000003", Command("assign", code="1042", arg="13800000003")),
    ("assign #1042 +86 138 0000 0003", Command("assign", code="1042", arg="+86 138 0000 0003")),
    ("派 1042", Command("assign", code="1042")),
    ("通知 明天9点在村委会接种疫苗。", Command("notice", arg="明天9点在村委会接种疫苗。")),
    ("通知：明天停水", Command("notice", arg="明天停水")),
    ("通知全体 明天停电，请备好蜡烛", Command("notice_all", arg="明天停电,请备好蜡烛")),
    ("NOTICE meeting at 9", Command("notice", arg="meeting at 9")),
    ("notice all: power cut tomorrow", Command("notice_all", arg="power cut tomorrow")),
    ("通知", Command("notice")),
    # not commands
    ("接种", Command("unknown")),  # 接 inside a word is not 接
    ("1042 接种", Command("unknown")),
    ("accepted 1042", Command("unknown")),
    ("退订 1042", Command("unknown")),
    ("1042", Command("unknown")),
    ("你好", Command("unknown")),
    ("", Command("unknown")),
    ("\x00\x1b", Command("unknown")),
    ("接 12345678901234", Command("unknown")),  # a phone number is not a code
    ("noticed the pipe", Command("unknown")),
]


@pytest.mark.parametrize(("body", "expected"), TEAM)
def test_a_team_members_text_reads_as_the_contracts_command(body: str, expected: Command) -> None:
    assert expected == parse(body, volunteer=True)


RESIDENT = [
    ("1", "open", "medicine", "", "1"),
    ("２", "open", "food", "", "2"),
    ("2 买菜", "open", "food", "买菜", "2"),
    ("#3、发烧了", "open", "doctor", "发烧了", "3"),
    ("4", "open", "vaccination", "", "4"),
    ("5.暖气不热", "open", "utilities", "暖气不热", "5"),
    ("9", "open", "other", "", "9"),
    ("9 水管冻裂了", "open", "utilities", "水管冻裂了", "9"),
    ("需要降压药", "open", "medicine", "需要降压药", ""),
    ("帮我买点菜和大米", "open", "food", "帮我买点菜和大米", ""),
    ("想吃饭", "open", "food", "想吃饭", ""),
    ("老伴发烧了要去医院", "open", "doctor", "老伴发烧了要去医院", ""),
    ("我奶奶一直咳嗽难受", "open", "doctor", "我奶奶一直咳嗽难受", ""),
    ("想打疫苗，走不动", "open", "vaccination", "想打疫苗,走不动", ""),
    ("家里停电了", "open", "utilities", "家里停电了", ""),
    ("煤气味很大", "open", "utilities", "煤气味很大", ""),
    ("1号楼停水了", "open", "utilities", "1号楼停水了", ""),  # a house number is no menu digit
    ("1.5斤大米", "open", "food", "1.5斤大米", ""),
    ("帮助我", "open", "other", "帮助我", ""),
    ("help me please", "open", "other", "help me please", ""),
    ("I need my pills", "open", "medicine", "I need my pills", ""),
    ("接 1042", "open", "other", "接 1042", ""),  # a resident's 接 takes nothing
    ("帮助", "help", "", "", ""),
    ("HELP", "help", "", "", ""),
    ("", "help", "", "", ""),
    ("。。。", "help", "", "", ""),
    ("0", "help", "", "", ""),
    ("7", "help", "", "", ""),
    ("STOP", "stop", "", "", ""),
    ("stop", "stop", "", "", ""),
    ("退订", "stop", "", "", ""),
    ("START", "start", "", "", ""),
]


@pytest.mark.parametrize(("body", "verb", "category", "text", "digit"), RESIDENT)
def test_a_residents_text_opens_a_ticket_of_the_right_category(
        body: str, verb: str, category: str, text: str, digit: str) -> None:
    assert Command(verb, category=category, text=text, digit=digit) == parse(body)


def test_a_long_text_is_cut_and_control_characters_never_reach_a_ticket() -> None:
    command = parse("要药\x00\x07\x1b[2J" + "啊" * 5000)
    assert command.verb == "open" and command.category == "medicine"
    assert len(command.text) == 1000
    assert not any(ord(ch) < 32 for ch in command.text)


def test_printable_keeps_line_breaks_but_drops_controls_and_direction_overrides() -> None:
    assert printable("第一行\n第二行\x00\u202eabc\x07") == "第一行\n第二行abc"


@pytest.mark.parametrize(("text", "category"), [
    ("买药", "medicine"), ("去医院拿药", "medicine"), ("接种疫苗", "vaccination"),
    ("水管冻了没水", "utilities"), ("看病", "doctor"), ("外面下雪路滑", "other"),
    ("no power since morning", "utilities"), ("need groceries", "food"),
])
def test_categories_are_guessed_from_the_words_of_the_need(text: str, category: str) -> None:
    assert category == guess_category(text)
