"""Importing the ledger: Chinese or English headers, CSV or XLSX, all rows or none, and lookups by phone."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook

from gateway import registry
from gateway.context import Hotline
from gateway.registry_file import RegistryFileError, import_file
from tests.conftest import LANDLINE_RESIDENT, RESIDENT, SAMPLE, VOLUNTEER

EN_HEADER = "village,grid,name,phone,role,groups,address,notes"


def write(tmp_path: Path, text: str, name: str = "ledger.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_sample_ledger_imports_with_chinese_headers(hl: Hotline) -> None:
    report = import_file(hl.r, SAMPLE, "CN")
    assert report.ok and report.added == 16
    wang = registry.person(hl.r, RESIDENT)
    assert wang is not None
    assert (wang.name, wang.village, wang.grid, wang.town) == ("王秀英", "联合村", "第一网格", "归流河镇")
    assert wang.groups == ("elderly", "alone")
    assert (wang.contact_name, wang.contact_phone) == ("王小明", "+8613900000101")


def test_lookup_goes_from_phone_to_person_to_team(hl: Hotline) -> None:
    import_file(hl.r, SAMPLE, "CN")
    wang = registry.person(hl.r, RESIDENT)
    assert wang is not None
    team = registry.team(hl.r, wang.village_id, wang.grid)
    assert [p.name for p in team] == ["孙玉梅", "李建国", "王芳", "赵磊"]
    assert [p.name for p in registry.heads(hl.r, wang.village_id)] == ["张志强"]
    assert [p.name for p in registry.duty(hl.r, "归流河镇")] == ["周海涛"]
    village = registry.find_village(hl.r, "联合村")
    assert village is not None and village.grids == ("第一网格", "第二网格")


def test_landline_in_excel_form_is_normalised(hl: Hotline) -> None:
    import_file(hl.r, SAMPLE, "CN")
    li = registry.person(hl.r, LANDLINE_RESIDENT)
    assert li is not None and li.groups == ("elderly", "disabled")


def test_english_headers_with_bom_and_any_column_order(hl: Hotline, tmp_path: Path) -> None:
    path = write(tmp_path, "phone,name,role,village,grid,groups,address,notes\n"
                 "13800001234.0,Wang Fang,volunteer,Unity,Grid 1,,,\n", bom=True)
    report = import_file(hl.r, path, "CN")
    assert report.ok
    person = registry.person(hl.r, "+8613800001234")
    assert person is not None and person.role == "volunteer" and person.village == "Unity"


def test_full_width_brackets_and_spaces_in_headers_are_accepted(hl: Hotline, tmp_path: Path) -> None:
    path = write(tmp_path, " 村（社区） ,网格,姓名,电话,身份,类别,地址,备注\n"
                 "联合村,第一网格,王芳,13800000003,队员,,,\n")
    assert import_file(hl.r, path, "CN").ok


def test_xlsx_ledger_imports(hl: Hotline, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["村(社区)", "网格", "姓名", "电话", "身份", "类别", "地址", "备注"])
    sheet.append(["联合村", "第一网格", "王秀英", 13900000001, "居民", "老年人、独居", "一组", ""])
    sheet.append([None] * 8)
    sheet.append(["联合村", "第一网格", "王芳", 13800000003.0, "队员", None, None, None])
    path = tmp_path / "ledger.xlsx"
    book.save(path)
    report = import_file(hl.r, path, "CN")
    assert report.ok and report.added == 2
    assert registry.person(hl.r, VOLUNTEER) is not None


@pytest.mark.parametrize(("row", "reason"), [
    ("联合村,第一网格,王芳,12345,队员,,,", "phone '12345'"),
    ("联合村,第一网格,王芳,13800000003,园丁,,,", "unknown role '园丁'"),
    ("联合村,第一网格,,13800000003,队员,,,", "name is empty"),
    (",第一网格,王芳,13800000003,队员,,,", "village is empty"),
    ("联合村,,王芳,13800000003,队员,,,", "grid is empty"),
    ("联合村,第一网格,王芳,13800000003,居民,富人,,", "unknown group '富人'"),
    ("联合村,第一网格,王芳,13800000003,,,,", "role is empty"),
])
def test_every_kind_of_bad_row_is_named(hl: Hotline, tmp_path: Path, row: str,
                                        reason: str) -> None:
    path = write(tmp_path, "村(社区),网格,姓名,电话,身份,类别,地址,备注\n"
                 "联合村,第一网格,孙玉梅,13800000001,队长,,,\n" + row + "\n")
    report = import_file(hl.r, path, "CN")
    assert not report.ok
    assert report.errors[0][0] == 3
    assert reason in report.errors[0][1]
    assert registry.is_empty(hl.r), "a bad file must import nothing"


def test_a_bad_file_lists_every_bad_row(hl: Hotline, tmp_path: Path) -> None:
    path = write(tmp_path, EN_HEADER + "\n"
                 "Unity,G1,A,13800000001,leader,,,\n"
                 "Unity,G1,B,bad,volunteer,,,\n"
                 "Unity,G1,C,13800000001,volunteer,,,\n"
                 "Unity,G1,D,13800000004,wizard,,,\n")
    report = import_file(hl.r, path, "CN")
    assert [n for n, _ in report.errors] == [3, 4, 5]
    assert "already on row 2" in report.errors[1][1]
    assert registry.is_empty(hl.r)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty"),
    ("名字,电话\n王芳,13800000003\n".encode(), "missing columns"),
    ("村(社区),网格,姓名,电话,身份,类别,地址,备注\n".encode(), "no rows"),
    ("村,网格\n".encode("utf-16"), "not UTF-8"),
])
def test_broken_files_are_refused_whole(hl: Hotline, tmp_path: Path, content: bytes,
                                        message: str) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(RegistryFileError, match=message):
        import_file(hl.r, path, "CN")
    assert registry.is_empty(hl.r)


def test_a_file_that_is_not_really_xlsx_is_refused(hl: Hotline, tmp_path: Path) -> None:
    path = tmp_path / "ledger.xlsx"
    path.write_bytes(b"this is not a zip")
    with pytest.raises(RegistryFileError, match="not a readable XLSX"):
        import_file(hl.r, path, "CN")


def test_importing_the_same_file_twice_changes_nothing(hl: Hotline) -> None:
    import_file(hl.r, SAMPLE, "CN")
    before = {k: hl.r.dump(k) for k in hl.r.keys("hl:*")}
    report = import_file(hl.r, SAMPLE, "CN")
    assert (report.added, report.updated, report.unchanged) == (0, 0, 16)
    assert {k: hl.r.dump(k) for k in hl.r.keys("hl:*")} == before


def test_a_changed_row_updates_the_person_and_their_team(hl: Hotline, tmp_path: Path) -> None:
    first = write(tmp_path, EN_HEADER + "\nUnity,G1,Wang,13800000003,volunteer,,,\n", "a.csv")
    moved = write(tmp_path, EN_HEADER + "\nUnity,G2,Wang Fang,13800000003,volunteer,,,\n",
                  "b.csv")
    import_file(hl.r, first, "CN")
    report = import_file(hl.r, moved, "CN")
    assert report.updated == 1
    person = registry.person(hl.r, VOLUNTEER)
    assert person is not None and (person.name, person.grid) == ("Wang Fang", "G2")
    assert registry.team(hl.r, person.village_id, "G1") == []
    assert [p.name for p in registry.team(hl.r, person.village_id, "G2")] == ["Wang Fang"]


def test_a_csv_with_a_stray_carriage_return_is_refused_cleanly(hl: Hotline, tmp_path: Path) -> None:
    """A lone CR (an old Mac line end) ends a row, as spreadsheets read it: the halves are bad rows."""
    path = write(tmp_path, EN_HEADER + "\nUnity,G1,Wang\rFang,13800000003,volunteer,,,\n")
    report = import_file(hl.r, path, "CN")
    assert not report.ok and report.errors[0][0] == 2
    assert registry.is_empty(hl.r)
