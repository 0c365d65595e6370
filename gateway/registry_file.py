"""Reading a village's ledger from CSV or XLSX: every row checked, and all rows stored or none."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway import phones
from gateway.registry import GROUPS, Person
from gateway.store import KEYS, Pipeline, Redis

HEADERS = {
    "village": ("village", "村(社区)", "村", "社区", "嘎查"),
    "grid": ("grid", "网格"),
    "name": ("name", "姓名"),
    "phone": ("phone", "电话", "手机", "联系电话"),
    "role": ("role", "身份"),
    "groups": ("groups", "类别"),
    "address": ("address", "地址"),
    "notes": ("notes", "备注"),
    "town": ("town", "乡镇(街道)", "乡镇", "苏木"),
    "contact": ("contact", "联系人"),
    "language": ("language", "语言"),
}
REQUIRED = ("village", "grid", "name", "phone", "role", "groups", "address", "notes")

ROLE_WORDS = {
    "resident": "resident", "居民": "resident",
    "volunteer": "volunteer", "队员": "volunteer", "志愿者": "volunteer",
    "grid_worker": "grid_worker", "网格员": "grid_worker",
    "leader": "leader", "队长": "leader",
    "head": "head", "村干部": "head",
    "duty": "duty", "值班": "duty",
}
GROUP_WORDS = {g: g for g in GROUPS} | {
    "老年人": "elderly", "残疾人": "disabled", "独居": "alone", "居家治疗": "home_care",
    "低保": "low_income", "特困": "extreme_poverty", "五保": "extreme_poverty",
    "留守": "left_behind",
}
LANGUAGE_WORDS = {
    "zh": "zh", "中文": "zh", "汉语": "zh", "普通话": "zh", "mandarin": "zh", "chinese": "zh",
    "en": "en", "英语": "en", "english": "en",
    "mn": "mn", "蒙古语": "mn", "蒙语": "mn", "mongolian": "mn",
}
_GROUP_SPLIT = re.compile(r"[;；,，、]")
# Caps on what one import reads (HOTLINE_IMPORT_MAX_ROWS, HOTLINE_IMPORT_MAX_CELL): a county's
# ledger is a few thousand rows of short cells; a hostile file must not fill memory or Redis.
MAX_ROWS = 20000
MAX_CELL = 2000  # characters
MAX_BYTES = 64 * 1024 * 1024  # the CSV file, or an XLSX's unpacked parts together
_INVISIBLE = "\ufeff\u200b\u2060"  # byte-order marks and zero-width characters around text


class RegistryFileError(Exception):
    """The file as a whole cannot be read (not a spreadsheet, no header, missing columns)."""


@dataclass
class ImportReport:
    """What an import found and did: bad rows (then nothing stored), or the counts."""

    errors: list[tuple[int, str]] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def _canon(header: object) -> str:
    text = unicodedata.normalize("NFKC", str(header or "")).strip(_INVISIBLE + " \t\r\n")
    return text.strip().lower().replace(" ", "")


_HEADER_INDEX = {_canon(alias): key for key, aliases in HEADERS.items() for alias in aliases}


def read_rows(path: Path, *, max_rows: int = MAX_ROWS,
              max_cell: int = MAX_CELL) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (row number as a spreadsheet shows it, {column: text}) for each non-empty row.

    A file of more than `max_rows` rows, or with a cell longer than `max_cell` characters,
    is refused whole (RegistryFileError)."""
    raw_rows = _read_xlsx(path) if path.suffix.lower() in (".xlsx", ".xlsm") else _read_csv(path)
    try:
        header = next(raw_rows)
    except StopIteration:
        raise RegistryFileError("the file is empty") from None
    columns = [_HEADER_INDEX.get(_canon(h)) for h in header]
    unknown = [str(h) for h, c in zip(header, columns, strict=True) if c is None and str(h).strip()]
    missing = [k for k in REQUIRED if k not in columns]
    if missing:
        extra = f"; unknown columns: {', '.join(unknown)}" if unknown else ""
        raise RegistryFileError(f"missing columns: {', '.join(missing)}{extra}")
    for number, values in enumerate(raw_rows, start=2):
        if number - 1 > max_rows:
            raise RegistryFileError(f"more than {max_rows} rows (HOTLINE_IMPORT_MAX_ROWS)")
        row = {c: _cell(v) for c, v in zip(columns, values, strict=False) if c}
        long = next((c for c, v in row.items() if len(v) > max_cell), None)
        if long is not None:
            raise RegistryFileError(f"row {number}: the {long} cell is longer than {max_cell} "
                                    "characters (HOTLINE_IMPORT_MAX_CELL)")
        if any(row.values()):
            yield number, row


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip(_INVISIBLE + " \t\r\n\f\v")


def _too_big() -> RegistryFileError:
    return RegistryFileError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB: "
                             "not a ledger")


def _read_csv(path: Path) -> Iterator[list[object]]:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise _too_big()
        # Any number of byte-order marks (a file saved twice by two programs has two).
        text = path.read_bytes().decode("utf-8-sig").lstrip("\ufeff")
    except UnicodeDecodeError:
        raise RegistryFileError("not UTF-8 text: save the sheet as CSV UTF-8, or as XLSX") from None
    except OSError as exc:
        raise RegistryFileError(f"cannot read {path}: {exc.strerror}") from None
    if "\x00" in text:
        raise RegistryFileError("not a CSV file (binary content)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            yield list(row)
    except csv.Error as exc:
        raise RegistryFileError(f"not a readable CSV file (line {reader.line_num}: {exc})") from None


def _read_xlsx(path: Path) -> Iterator[list[object]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(path) as archive:
            if sum(i.file_size for i in archive.infolist()) > MAX_BYTES:
                raise _too_big()  # a zip bomb, or a cell of a hundred megabytes
        book = load_workbook(path, read_only=True, data_only=True)
    except RegistryFileError:
        raise
    except Exception as exc:  # whatever a hostile file makes openpyxl raise
        raise RegistryFileError(f"not a readable XLSX file: {_reason(exc)}") from None
    try:
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        while True:
            try:
                values = next(rows)
            except StopIteration:
                return
            except Exception as exc:  # bad XML inside the sheet, bad cell types
                raise RegistryFileError(f"not a readable XLSX file: {_reason(exc)}") from None
            yield list(values)
    finally:
        book.close()


def _reason(exc: Exception) -> str:
    """A short reason for a person: the first line of the error (bad XML: its line and column)."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    kind = "bad XML" if isinstance(exc, ET.ParseError) else type(exc).__name__
    return f"{kind}: {text}" if text else kind


def parse_row(row: dict[str, str], region: str) -> tuple[Person | None, list[str]]:
    """A `Person` from one row, or the reasons it is refused."""
    problems: list[str] = []
    role = ROLE_WORDS.get(row.get("role", "").strip().lower())
    if role is None:
        problems.append(f"unknown role {row.get('role', '')!r}" if row.get("role")
                        else "role is empty")
    name = row.get("name", "")
    if not name:
        problems.append("name is empty")
    phone = ""
    try:
        phone = phones.normalise(row.get("phone", ""), region)
    except phones.BadPhone as exc:
        problems.append(f"phone {row.get('phone', '')!r}: {exc}")
    village, grid, town = row.get("village", ""), row.get("grid", ""), row.get("town", "")
    if role != "duty" and not village:
        problems.append("village is empty")
    if role in ("resident", "volunteer", "grid_worker", "leader") and not grid:
        problems.append("grid is empty")
    if role == "duty" and not (village or town):
        problems.append("a duty row needs its town or village")
    groups: list[str] = []
    for word in filter(None, (w.strip().lower() for w in _GROUP_SPLIT.split(row.get("groups", "")))):
        if word not in GROUP_WORDS:
            problems.append(f"unknown group {word!r}")
        elif GROUP_WORDS[word] not in groups:
            groups.append(GROUP_WORDS[word])
    contact_name, contact_phone = "", ""
    if row.get("contact"):
        contact_name, contact_phone, problem = _contact(row["contact"], region)
        if problem:
            problems.append(problem)
    language = ""
    if row.get("language"):
        language = LANGUAGE_WORDS.get(row["language"].strip().lower(), "")
        if not language:
            problems.append(f"unknown language {row['language']!r}")
    if problems or role is None:
        return None, problems
    return Person(
        phone=phone, name=name, role=role, village=village, town=town, grid=grid,
        groups=tuple(groups), address=row.get("address", ""), notes=row.get("notes", ""),
        contact_name=contact_name, contact_phone=contact_phone, language=language,
    ), []


_PHONE_IN_TEXT = re.compile(r"[+＋0-9０-９][0-9０-９ \-－]{5,}[0-9０-９]")


def _contact(text: str, region: str) -> tuple[str, str, str]:
    match = _PHONE_IN_TEXT.search(text)
    if not match:
        return text.strip(), "", f"contact {text!r} has no phone number"
    phone = phones.try_normalise(match.group(0), region)
    if not phone:
        return "", "", f"contact phone {match.group(0)!r} is not a valid number"
    name = (text[: match.start()] + text[match.end():]).strip(" :：,，;；()（）")
    return name, phone, ""


def check_file(path: Path, region: str, *, max_rows: int = MAX_ROWS, max_cell: int = MAX_CELL,
               ) -> tuple[list[tuple[int, Person]], list[tuple[int, str]]]:
    """Parse every row; return the people and every bad row with its reasons."""
    good: list[tuple[int, Person]] = []
    errors: list[tuple[int, str]] = []
    first_row: dict[str, int] = {}
    for number, row in read_rows(path, max_rows=max_rows, max_cell=max_cell):
        person, problems = parse_row(row, region)
        if person and person.phone in first_row:
            problems = [f"phone {person.phone} is already on row {first_row[person.phone]}"]
            person = None
        if person is None:
            errors.append((number, "; ".join(problems)))
            continue
        first_row[person.phone] = number
        good.append((number, person))
    if not good and not errors:
        raise RegistryFileError("the file has a header but no rows")
    return good, errors


def import_file(r: Redis, path: Path, region: str, *, max_rows: int = MAX_ROWS,
                max_cell: int = MAX_CELL) -> ImportReport:
    """Import all rows of `path`, or none if any is bad (or the file is over the caps)."""
    good, errors = check_file(path, region, max_rows=max_rows, max_cell=max_cell)
    if errors:
        return ImportReport(errors=errors)
    return store_people(r, [p for _, p in good])


def store_people(r: Redis, rows: list[Person]) -> ImportReport:
    """Write the people in one MULTI; a person whose row moved leaves their old team.

    Imports are an office task run by one person at a time, so the plan is read
    first and written in one transaction, without optimistic locking.
    """
    report = ImportReport()
    village_ids: dict[str, str] = dict(r.hgetall(KEYS.villages))
    next_id = int(r.get(KEYS.seq("village")) or 0)
    towns = {vid: r.hget(KEYS.village(vid), "town") or "" for vid in set(village_ids.values())}
    for p in rows:
        if p.village and p.village not in village_ids:
            next_id += 1
            village_ids[p.village] = f"v{next_id}"
        if p.village and p.town:
            towns[village_ids[p.village]] = p.town
    olds = people_before(r, [p.phone for p in rows])
    with r.pipeline(transaction=True) as pipe:
        pipe.set(KEYS.seq("village"), next_id)
        for name, vid in village_ids.items():
            pipe.hset(KEYS.villages, name, vid)
            pipe.hset(KEYS.village(vid), mapping={"name": name, "town": towns.get(vid, "")})
        for order, row in enumerate(rows, start=1):
            vid = village_ids.get(row.village, "")
            person = replace(row, village_id=vid, town=row.town or towns.get(vid, ""), order=order)
            old = olds.get(person.phone)
            if old == person:
                report.unchanged += 1
                continue
            if old is None:
                report.added += 1
            else:
                report.updated += 1
                _unplace(pipe, old)
            pipe.hset(KEYS.person(person.phone), mapping=person.to_hash())  # type: ignore[arg-type]
            pipe.sadd(KEYS.people, person.phone)
            _place(pipe, person)
        if report.added or report.updated:
            pipe.set(KEYS.people_version, uuid.uuid4().hex)  # webhooks' ledger copies reload
        pipe.execute()
    return report


def people_before(r: Redis, numbers: list[str]) -> dict[str, Person]:
    pipe = r.pipeline(transaction=False)
    for phone in numbers:
        pipe.hgetall(KEYS.person(phone))
    return {p: Person.from_hash(d) for p, d in zip(numbers, pipe.execute(), strict=True) if d}


def _memberships(p: Person) -> list[str]:
    """The sorted sets that list this person, by role."""
    if p.role in ("volunteer", "grid_worker", "leader"):
        keys = [KEYS.team(p.village_id, p.grid)]
    elif p.role == "head":
        keys = [KEYS.heads(p.village_id)]
    elif p.role == "duty":
        keys = [KEYS.duty(p.town), KEYS.duty_all]
    else:
        keys = [KEYS.residents(p.village_id)]
    return keys


def _unplace(pipe: Pipeline, p: Person) -> None:
    for key in _memberships(p):
        pipe.zrem(key, p.phone)


def _place(pipe: Pipeline, p: Person) -> None:
    for key in _memberships(p):
        pipe.zadd(key, {p.phone: p.order})
    if p.village_id and p.grid:
        pipe.zadd(KEYS.grids(p.village_id), {p.grid: p.order}, nx=True)
