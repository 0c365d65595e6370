"""Loudspeaker broadcasts (村村响): a notice rendered as the script read aloud, a print page, a PDF
or a WAV. Pure renderings of a notice: txt -> html -> pdf; txt -> spoken text -> wav."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.notices import Notice
    from gateway.settings import Settings

FORMATS = ("txt", "html", "pdf", "wav")
MEDIA_TYPES = {"txt": "text/plain; charset=utf-8", "html": "text/html; charset=utf-8",
               "pdf": "application/pdf", "wav": "audio/wav"}
BINARY = ("pdf", "wav")


class MissingPackage(RuntimeError):
    """A system package a format needs is not installed; the message says what to install."""

    def __init__(self, problem: str, apt: str = "", pip: str = "") -> None:
        hint = f"apt-get install {apt}" if apt else f"pip install {pip}"
        super().__init__(f"{problem}; install it with: {hint}")
        self.apt = apt
        self.pip = pip


def render(settings: Settings, notice: Notice, fmt: str, *, repeat: int | None = None,
           language: str | None = None, paper: str = "A4", dashboard: bool = False) -> bytes:
    """`notice` in format `fmt` (txt, html, pdf or wav) as bytes (text is UTF-8).

    Raises MissingPackage when a system package the format needs is absent, ValueError for a
    bad option."""
    from gateway.broadcast import page, script

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    prepared = script.prepare(settings, notice, repeat=repeat, language=language)
    if fmt == "txt":
        return script.render(settings, prepared).encode()
    if fmt == "html":
        return page.render(settings, prepared, dashboard=dashboard).encode()
    if fmt == "pdf":
        from gateway.broadcast import pdf

        html = page.render(settings, prepared, paper=paper, for_pdf=True)
        return pdf.render(html)
    from gateway.broadcast import audio

    return audio.render(script.render(settings, prepared), prepared.language)
