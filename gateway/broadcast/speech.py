"""Text made ready for speech: numbers, dates, times, percentages, temperatures and phone numbers
written out as a person reads them aloud, so a synthesiser never guesses (326 -> 三百二十六)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import cn2an

# Full-width digits and signs typed on Chinese keyboards, made ASCII so one set of rules applies.
_WIDE = str.maketrans("０１２３４５６７８９％：－～．＋", "0123456789%:-~.+")
_ZH_DIGITS = "零一二三四五六七八九"
# A measure word after a lone 2 makes it 两 (两个人, 两点), as people say it.
_MEASURES = ("个", "位", "次", "天", "人", "盒", "片", "瓶", "袋", "箱", "斤", "公斤", "岁",
             "小时", "周", "遍", "趟", "户", "家", "名", "种", "辆", "台", "点", "元", "块",
             "支", "包", "件", "条", "张", "碗")
_PHONE_WORDS = r"(?:拨打|致电|电话|热线|手机|号码|call|dial|phone|tel\.?)"
_NUM = r"\d+(?:\.\d+)?"
_TEMP_UNIT = r"(?:°\s*C|°\s*c|℃|摄氏度|°)"
_MINUS = r"[-−]"
# Short service numbers (急救 120, 报警 110, 政务热线 12345) are said digit by digit, unless an
# amount follows (120片, 110元).
_SERVICE = r"110|119|120|122|12345|12315|12320|12356|12367"
_AMOUNT = "|".join((*_MEASURES, "米", "公里", "千克", "克", "毫升", "毫克", "%", "°", "度", "号",
                    "月", "日", "年", "分"))

_PATTERN = re.compile(
    "|".join((
        rf"(?P<ctx>{_PHONE_WORDS}[:\s]*)(?P<ctxnum>\+?\d(?:[\- ]?\d){{2,}})(?![\d.])",
        r"(?<![\d.])(?P<mobile>(?:\+?86[\- ]?)?1[3-9]\d(?:[\- ]?\d){8})(?!\d)",
        r"(?<![\d.])(?P<landline>\(?0\d{2,3}\)?-?\d{7,8})(?!\d)",
        r"(?<![\d.])(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?![\d.])",
        r"(?<![\d.])(?P<year>\d{4})(?=\s*年)",
        r"(?<![\d.])(?P<md>\d{1,2})(?=\s*[月日号])",
        rf"(?<![\d.])(?P<service>{_SERVICE})(?![\d.])(?!\s*(?:{_AMOUNT}))",
        r"(?<![\d.])(?P<t1>\d{1,2}[:]\d{2})\s*[-~—–至到]\s*(?P<t2>\d{1,2}[:]\d{2})(?![\d.])",
        r"(?<![\d.])(?P<time>\d{1,2}[:]\d{2})(?![\d.])",
        rf"(?P<r1>{_MINUS}?{_NUM})\s*{_TEMP_UNIT}?\s*[~至到]\s*(?P<r2>{_MINUS}?{_NUM})\s*{_TEMP_UNIT}",
        rf"(?P<temp>{_MINUS}?{_NUM})\s*{_TEMP_UNIT}",
        rf"(?P<cold>{_MINUS}{_NUM})(?=\s*度)",
        rf"(?P<pct>{_NUM})\s*%",
        r"(?<![\d.])(?P<n1>\d{1,3})\s*(?:~|-|—|–)\s*(?P<n2>\d{1,3})(?![\d.:])",
        r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)",
    ))
)


def digits(text: str, phone: bool = False) -> str:
    """Read digit by digit (二零二三); in phone numbers 1 is 幺, as it is said on the phone."""
    out = "".join(_ZH_DIGITS[int(c)] for c in text if c.isdigit())
    return out.replace("一", "幺") if phone else out


def number(text: str) -> str:
    """An integer or decimal as a number word: 326 -> 三百二十六, 20000 -> 两万, 3.5 -> 三点五."""
    text = text.replace(",", "")
    whole = text.split(".", 1)[0]
    if (len(whole) > 1 and whole.startswith("0")) or len(whole) > 12:
        # 007, ID numbers: no one says them as amounts
        return "点".join(digits(part) for part in text.split("."))
    words = str(cn2an.an2cn(text))
    if words[:2] in ("二千", "二万", "二亿"):
        words = "两" + words[1:]
    return words


def phone_groups(text: str) -> list[str]:
    """The groups a number is written in (a bare mobile: 3-4-4), without China's +86."""
    raw = re.sub(r"^\+?86[\- ]?(?=1\d{10}$|1\d{2}[\- ])", "", text.strip())
    groups = [g for g in re.split(r"[\s\-()]+", raw) if g]
    if len(groups) == 1 and re.fullmatch(r"1\d{10}", groups[0]):
        g = groups[0]
        groups = [g[:3], g[3:7], g[7:]]
    return groups


def phone_number(text: str) -> str:
    """Digit by digit with 幺, a pause between the groups: 幺三八，零零零零，零零零幺."""
    return "，".join(digits(g, phone=True) for g in phone_groups(text))


def clock_time(text: str) -> str:
    """09:30 -> 九点三十分, 14:05 -> 十四点零五分, 8:00 -> 八点整, 2:00 -> 两点整."""
    hour, minute = (int(p) for p in text.split(":"))
    if hour > 24 or minute > 59:
        return f"{number(str(hour))}比{number(str(minute))}"  # a score or ratio, not a time
    spoken = "两" if hour == 2 else number(str(hour))
    if minute == 0:
        return f"{spoken}点整"
    if minute < 10:
        return f"{spoken}点零{number(str(minute))}分"
    return f"{spoken}点{number(str(minute))}分"


def spoken_date(day: date) -> str:
    """2023-01-05 -> 二零二三年一月五日."""
    return f"{digits(str(day.year))}年{number(str(day.month))}月{number(str(day.day))}日"


def temperature(text: str) -> str:
    """-3 -> 零下三度 (the 度 is added by the caller's pattern)."""
    text = text.replace("−", "-")
    if text.startswith("-"):
        return "零下" + number(text[1:])
    return number(text)


def _zh(match: re.Match[str], source: str) -> str:
    g = match.groupdict()
    if g["ctxnum"]:
        return g["ctx"] + phone_number(g["ctxnum"])
    if g["mobile"] or g["landline"]:
        return phone_number(g["mobile"] or g["landline"])
    if g["y"]:
        try:
            return spoken_date(date(int(g["y"]), int(g["m"]), int(g["d"])))
        except ValueError:  # not a real date: read the parts as numbers
            return "，".join(number(g[k]) for k in ("y", "m", "d"))
    if g["year"]:
        return digits(g["year"])
    if g["md"]:
        return number(str(int(g["md"])))
    if g["service"]:
        return digits(g["service"], phone=True)
    if g["t1"]:
        return f"{clock_time(g['t1'])}到{clock_time(g['t2'])}"
    if g["time"]:
        return clock_time(g["time"])
    if g["r1"]:
        return f"{temperature(g['r1'])}度到{temperature(g['r2'])}度"
    if g["temp"]:
        return temperature(g["temp"]) + "度"
    if g["cold"]:
        return temperature(g["cold"])
    if g["pct"]:
        return "百分之" + number(g["pct"])
    if g["n1"]:
        return f"{_counted(g['n1'], source, match.start())}到{_counted(g['n2'], source, match.end())}"
    return _counted(g["num"], source, match.end(), start=match.start())


def _counted(value: str, source: str, end: int, start: int | None = None) -> str:
    """A number, with a lone 2 said 两 before a measure word (两个) but not after 第 (第二)."""
    if value == "2" and source.startswith(_MEASURES, end) and not (
            start is not None and source[max(start - 1, 0):start] == "第"):
        return "两"
    return number(value)


def _en(match: re.Match[str], source: str) -> str:
    g = match.groupdict()
    if g["ctxnum"] or g["mobile"] or g["landline"] or g["service"]:
        prefix = g["ctx"] or ""
        value = g["ctxnum"] or g["mobile"] or g["landline"] or g["service"]
        return prefix + ", ".join(" ".join(x) for x in phone_groups(value))
    if g["y"]:
        try:
            return date(int(g["y"]), int(g["m"]), int(g["d"])).strftime("%-d %B %Y")
        except ValueError:
            return match.group(0)
    if g["r1"]:
        return f"{_en_temp(g['r1'])} to {_en_temp(g['r2'])} degrees"
    if g["temp"] or g["cold"]:
        return f"{_en_temp(g['temp'] or g['cold'])} degrees"
    if g["pct"]:
        return f"{g['pct']} percent"
    if g["t1"]:
        return f"{g['t1'].lstrip('0')} to {g['t2'].lstrip('0')}"
    if g["time"]:
        return g["time"].lstrip("0") or "0"
    if g["n1"]:
        return f"{g['n1']} to {g['n2']}"
    return match.group(0)


def _en_temp(value: str) -> str:
    value = value.replace("−", "-")
    return f"minus {value[1:]}" if value.startswith("-") else value


_RULES: dict[str, Callable[[re.Match[str], str], str]] = {"zh": _zh, "en": _en}


def normalise(text: str, language: str = "zh") -> str:
    """`text` with every number written out as it is read aloud in `language` (zh or en)."""
    source = text.translate(_WIDE)
    rule = _RULES.get(language, _zh)
    return _PATTERN.sub(lambda m: rule(m, source), source)
