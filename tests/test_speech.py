"""Text normalised for speech: every number in a notice read aloud as a person reads it."""

from __future__ import annotations

import pytest

from gateway.broadcast import audio, speech

ZH = [
    # plain numbers
    ("326", "三百二十六"),
    ("共10户", "共十户"),
    ("12人", "十二人"),
    ("105元", "一百零五元"),
    ("1,000元", "一千元"),
    ("20000人", "两万人"),
    ("3.5公斤", "三点五公斤"),
    ("吃2片", "吃两片"),
    ("第2网格", "第二网格"),
    ("3-5天", "三到五天"),
    ("编号007", "编号零零七"),
    ("１２人", "十二人"),
    # dates
    ("2023-01-05", "二零二三年一月五日"),
    ("2023/1/5", "二零二三年一月五日"),
    ("2023年01月05日", "二零二三年一月五日"),
    ("1月7日", "一月七日"),
    ("12月31号", "十二月三十一号"),
    # times
    ("09:30", "九点三十分"),
    ("14:05", "十四点零五分"),
    ("8:00", "八点整"),
    ("2:00", "两点整"),
    ("９：３０", "九点三十分"),
    ("9:00-11:30", "九点整到十一点三十分"),
    # percentages
    ("85%", "百分之八十五"),
    ("12.5%", "百分之十二点五"),
    ("85％", "百分之八十五"),
    # temperatures
    ("-3°C", "零下三度"),
    ("−3℃", "零下三度"),
    ("25°C", "二十五度"),
    ("-3度", "零下三度"),
    ("零下3度", "零下三度"),
    ("-15~-5℃", "零下十五度到零下五度"),
    ("气温-3.5°C", "气温零下三点五度"),
    # phone numbers: digit by digit, 幺 for 1, a pause between groups
    ("13800000001", "幺三八，零零零零，零零零幺"),
    ("138 0000 0001", "幺三八，零零零零，零零零幺"),
    ("+86 138 0000 0001", "幺三八，零零零零，零零零幺"),
    ("+8613800000001", "幺三八，零零零零，零零零幺"),
    ("0482-8261234", "零四八二，八二六幺二三四"),
    ("电话：6123456", "电话:六幺二三四五六"),
    ("拨打120", "拨打幺二零"),
    ("报警110", "报警幺幺零"),
    ("12345热线", "幺二三四五热线"),
    ("120片", "一百二十片"),
]


@pytest.mark.parametrize(("written", "spoken"), ZH)
def test_mandarin_numbers_are_written_out_as_people_say_them(written: str, spoken: str) -> None:
    assert speech.normalise(written, "zh") == spoken


EN = [
    ("2023-01-05", "5 January 2023"),
    ("09:30", "9:30"),
    ("-3°C", "minus 3 degrees"),
    ("85%", "85 percent"),
    ("13800000001", "1 3 8, 0 0 0 0, 0 0 0 1"),
    ("call 120", "call 1 2 0"),
]


@pytest.mark.parametrize(("written", "spoken"), EN)
def test_english_numbers_are_left_to_the_voice_except_where_it_would_misread(
        written: str, spoken: str) -> None:
    assert speech.normalise(written, "en") == spoken


def test_a_whole_notice_keeps_its_words_and_loses_every_digit() -> None:
    text = ("本周六（2023-01-07）上午09:30至11:00在村委会接种疫苗，60岁以上老人请带好身份证。"
            "气温-3°C，接种率已达85%。有问题请拨打孙玉梅电话13800000001。")
    spoken = speech.normalise(text)
    assert not any(c.isdigit() for c in spoken)
    assert "二零二三年一月七日" in spoken
    assert "九点三十分到十一点整" in spoken
    assert "零下三度" in spoken and "百分之八十五" in spoken
    assert "孙玉梅电话幺三八，零零零零，零零零幺" in spoken
    assert spoken.startswith("本周六（") and spoken.endswith("。")


def test_an_impossible_date_is_read_as_numbers_not_invented() -> None:
    assert speech.normalise("2023-13-45") == "两千零二十三，十三，四十五"


PINYIN = [
    ("银行", "yin2 hang2"),
    ("重新", "chong2 xin1"),
    ("长大", "zhang3 da4"),
    ("兴安盟", "xing1 an1 meng2"),
    ("一月五日", "yi1 yue4 wu3 ri4"),
    ("十一点整", "shi2 yi1 dian3 zheng3"),
    ("一百二十一", "yi4 bai3 er4 shi2 yi1"),
    ("幺三八，零零零零", "yao1 san1 ba1 , ling2 ling2 ling2 ling2"),
    ("请注意！", "qing3 zhu4 yi4 ."),
]


@pytest.mark.parametrize(("hanzi", "pinyin"), PINYIN)
def test_the_voice_gets_pinyin_with_the_reading_each_word_has(hanzi: str, pinyin: str) -> None:
    assert audio.pinyin(hanzi) == pinyin


def test_the_spoken_script_pauses_between_paragraphs_and_escapes_markup() -> None:
    ssml = audio.spoken("各位村民请注意！\n\n气温-3°C <小心>\n\n联合村", "zh")
    assert ssml.startswith("<speak>") and ssml.endswith("</speak>")
    assert ssml.count('<break time="1200ms"/>') == 2
    assert "ling2 xia4 san1 du4" in ssml
    assert "&lt;" in ssml and "<小心>" not in ssml
