"""The loudspeaker script as plain text: the words read aloud, from which the page and the audio follow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from gateway import clock, texts
from gateway.broadcast import speech
from gateway.notices import Notice
from gateway.settings import LANGUAGES, Settings


@dataclass(frozen=True)
class Script:
    """Everything a rendering needs, worked out once from the notice."""

    language: str
    village: str  # where template overrides are looked up (templates/villages/<village>/)
    place: str
    for_town: bool
    committee: str
    title: str
    body: str
    paragraphs: tuple[str, ...]
    repeat: int
    day: date
    written_date: str
    spoken_date: str
    announce_title: bool

    def context(self) -> dict[str, object]:
        return {
            "place": self.place, "for_town": self.for_town, "committee": self.committee,
            "title": self.title, "body": self.body, "paragraphs": self.paragraphs,
            "repeat": self.repeat, "day": self.day, "written_date": self.written_date,
            "spoken_date": self.spoken_date, "announce_title": self.announce_title,
        }


def prepare(settings: Settings, notice: Notice, *, repeat: int | None = None,
            language: str | None = None) -> Script:
    """The script of `notice`, read `repeat` times (default HOTLINE_BROADCAST_REPEAT)."""
    lang = language or notice.language or settings.language
    if lang not in LANGUAGES:
        lang = settings.language
    times = settings.broadcast_repeat if repeat is None else repeat
    if times < 1:
        raise ValueError("a notice is read at least once")
    day = clock.from_timestamp(notice.created_at).astimezone(settings.tz).date()
    base = {"place": notice.village, "for_town": notice.for_town, "day": day,
            "digits": lambda n: speech.digits(str(n)), "number": lambda n: speech.number(str(n))}

    def words(name: str, **extra: object) -> str:
        return texts.render(settings, "broadcast", name, language=lang, village=notice.village,
                            **base, **extra)

    body = "\n".join(line.strip() for line in notice.body.strip().splitlines() if line.strip())
    title = notice.title.strip()
    # A title that is only the body's first words (an SMS notice) is not read twice over.
    announce = bool(title) and not body.startswith(title.rstrip("…."))
    return Script(
        language=lang, village=notice.village, place=notice.village,
        for_town=notice.for_town, committee=words("committee"), title=title, body=body,
        paragraphs=tuple(body.split("\n")), repeat=times, day=day,
        written_date=words("date", spoken=False), spoken_date=words("date", spoken=True),
        announce_title=announce,
    )


def render(settings: Settings, script: Script) -> str:
    """The script as read aloud (templates/broadcast/<lang>/script.txt)."""
    text = texts.render(settings, "broadcast", "script", language=script.language,
                        village=script.village, **script.context())
    return text + "\n"
