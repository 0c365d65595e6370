"""One parser for every inbound text: whatever a feature phone sends becomes one command.

The words are those of CONTRACT.md "Messages". Texts are NFKC-normalised first, so
full-width digits, `＃`, `：` and the ideographic space read like their ASCII forms;
any other punctuation between a verb and a code is skipped, and the code may come
before or after the verb. The parser knows nothing of Redis: whether a bare `接`
has exactly one offer to take, or who may assign, is decided by the conversation.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from gateway.tickets import MENU

VERBS = ("open", "take", "done", "release", "list", "help", "assign", "notice", "notice_all",
         "stop", "start", "unknown")
MAX_TEXT = 1000  # characters of free text kept on a ticket or a notice

# Whole-message keywords (compared after dropping punctuation and case).
_STOP = {"stop", "退订"}
_START = {"start"}
_HELP = {"help", "帮助"}
_LIST = {"list", "任务"}
# Verbs that take a ticket code, in either order.
_CODE_VERBS = {"接": "take", "accept": "take", "完成": "done", "done": "done",
               "退": "release", "release": "release", "派": "assign", "assign": "assign"}
# With exactly one candidate ticket these need no code.
_BARE = {"接": "take", "accept": "take", "1": "take", "y": "take",
         "完成": "done", "done": "done", "退": "release", "release": "release"}

_SEP = r"[\W_]*"  # any run of spaces and punctuation, Chinese or not
_NOT_LETTER = r"(?![^\W\d_])"  # the verb is a whole word: 接 but not 接种, done but not doneness
_VERB = "|".join(sorted(map(re.escape, _CODE_VERBS), key=len, reverse=True))
_VERB_CODE = re.compile(rf"^{_SEP}(?P<verb>{_VERB}){_NOT_LETTER}{_SEP}(?P<code>[0-9]+)(?P<rest>.*)$",
                        re.S | re.I)
_CODE_VERB = re.compile(rf"^{_SEP}(?P<code>[0-9]+){_SEP}(?P<verb>{_VERB}){_NOT_LETTER}(?P<rest>.*)$",
                        re.S | re.I)
MAX_CODE = 9  # digits; anything longer is a phone number or noise, not a code
_NOTICE = re.compile(r"^[\W_]*(?:(?P<all_zh>通知全体)|(?P<zh>通知)|(?P<all_en>notice\s+all)\b"
                     r"|(?P<en>notice)\b)(?P<rest>.*)$", re.S | re.I)
# A menu digit alone or followed by a separator ("1", "2 买菜", "#3、发烧") but not "1号楼", "1.5斤".
_MENU_DIGIT = re.compile(r"^[\W_]*(?P<digit>[0-9])(?![0-9]|[^\W\d_]|[.,]\d)(?P<rest>.*)$", re.S)
_EDGE = re.compile(r"^[^\w+]+|[^\w)）]+$")

# Words that suggest a category when the resident gave no digit; the first match wins,
# so a specific need (a vaccine, a burst pipe, medicine) beats a general one (buying).
GUESSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vaccination", ("疫苗", "接种", "打针", "vaccin", "jab")),
    ("utilities", ("暖气", "停电", "停水", "煤气", "水管", "燃气", "没电", "没水", "漏水", "供暖",
                   "取暖", "炉子", "电线", "跳闸", "冻裂", "heating", "heater", "power cut",
                   "no power", "electric", "no water", "pipe", " gas")),
    ("medicine", ("药", "medicine", "medication", "pill", "tablet", "drug", "inhaler")),
    ("doctor", ("医院", "看病", "医生", "大夫", "发烧", "发热", "生病", "病", "医", "疼", "痛",
                "头晕", "难受", "喘", "doctor", "hospital", "fever", "sick", "ill ", "pain",
                "hurt")),
    ("food", ("菜", "饭", "买", "大米", "面条", "面粉", "粮", "吃", "餐", "牛奶", "奶粉", "food", "meal",
              "groceries", "grocery", "vegetable", "rice", "bread", "milk", "buy", "shopping",
              "hungry")),
)


@dataclass(frozen=True)
class Command:
    """What a text asks for: a verb from VERBS and what goes with it."""

    verb: str
    code: str = ""  # a ticket code, digits only ("" when none was given)
    arg: str = ""  # the assignee of `assign`, the text of `notice`
    category: str = ""  # for `open`: the category chosen or guessed
    text: str = ""  # for `open`: the resident's words, cleaned
    digit: str = ""  # for `open`: the menu digit the resident sent, if any


def clean(body: str) -> str:
    """NFKC-normalise and drop control and format characters; keep line breaks as spaces."""
    text = unicodedata.normalize("NFKC", body or "")
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
                   for ch in text)
    return re.sub(r"\s+", " ", text).strip()


_BIDI = dict.fromkeys(range(0x202A, 0x202F)) | dict.fromkeys(range(0x2066, 0x206A))


def printable(body: str) -> str:
    """The text as received, minus control characters, direction overrides and halves of
    characters (a lone surrogate, which a phone's JSON can carry): safe to show and to store."""
    kept = "".join(ch for ch in body
                   if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))
    return kept.translate(_BIDI).strip()


def _words(text: str) -> str:
    """Lower case with punctuation gone: what whole-message keywords are compared with."""
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def _edge_trim(text: str) -> str:
    return _EDGE.sub("", text).strip()


def guess_category(text: str) -> str:
    """The category a free text most likely asks for, or `other`."""
    low = f" {text.lower()} "
    for category, words in GUESSES:
        if any(w in low for w in words):
            return category
    return "other"


def parse(body: str, *, volunteer: bool = False) -> Command:
    """Turn a text into a command; `volunteer` enables the team's grammar.

    A resident's text is `stop`, `start`, `help` or `open` (anything else opens a
    ticket); a team member's is any verb, `unknown` when nothing matched.
    """
    text = clean(body)
    words = _words(text)
    if words in _STOP:
        return Command("stop")
    if words in _START:
        return Command("start")
    if words in _HELP or (not words and "?" in text):
        return Command("help")
    if volunteer:
        return _volunteer(text, words)
    return _resident(text, words)


def _resident(text: str, words: str) -> Command:
    if not any(ch.isalnum() for ch in text):
        return Command("help")  # empty, or nothing but punctuation: show the menu
    m = _MENU_DIGIT.match(text)
    if m:
        digit, rest = m["digit"], _edge_trim(m["rest"])[:MAX_TEXT]
        if digit in MENU and digit != "9":
            return Command("open", category=MENU[digit], text=rest, digit=digit)
        if digit == "9":
            return Command("open", category=guess_category(rest) if rest else "other", text=rest,
                           digit=digit)
        if not rest:
            return Command("help")  # a lone 0, 6, 7 or 8 is no request: show the menu
    text = text[:MAX_TEXT]
    return Command("open", category=guess_category(text), text=text)


def _volunteer(text: str, words: str) -> Command:
    if not words:
        return Command("unknown")
    if words in _LIST:
        return Command("list")
    if words in _BARE:
        return Command(_BARE[words])
    m = _NOTICE.match(text)
    if m:
        verb = "notice_all" if (m["all_zh"] or m["all_en"]) else "notice"
        return Command(verb, arg=_edge_trim_start(m["rest"])[:MAX_TEXT])
    m = _VERB_CODE.match(text) or _CODE_VERB.match(text)
    if m and len(m["code"]) <= MAX_CODE:
        verb = _CODE_VERBS[m["verb"].lower()]
        code = m["code"].lstrip("0") or "0"
        if verb == "assign":
            return Command("assign", code=code, arg=_edge_trim(m["rest"])[:100])
        return Command(verb, code=code)
    return Command("unknown")


def _edge_trim_start(text: str) -> str:
    """A notice's text without the separators that followed the keyword (`通知：...`)."""
    return re.sub(r"^[\s:,，、。.;；\-]+", "", text).strip()
