"""The print page as a PDF, rendered on the server with WeasyPrint and one named CJK font."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from typing import Any

from gateway.broadcast import MissingPackage
from gateway.broadcast.page import CJK_FONT, CJK_FONT_PACKAGE

# WeasyPrint loads these C libraries when imported; Debian names them so.
PANGO_PACKAGES = "libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0"


@lru_cache(maxsize=4)
def font_installed(family: str = CJK_FONT) -> bool:
    """True when fontconfig (what WeasyPrint asks) knows `family`; without it every Chinese
    character would come out as an empty box."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:  # fontconfig comes with every font package, so no fonts at all
        return False
    found = subprocess.run([fc_list, family, "family"], capture_output=True, text=True,
                           timeout=30, check=False)
    return any(family in line.split(",") for line in found.stdout.splitlines())


def _weasyprint() -> Any:
    try:
        import weasyprint
    except OSError as exc:  # the Python package is there, the pango libraries are not
        raise MissingPackage(f"WeasyPrint cannot load pango ({exc})", PANGO_PACKAGES) from None
    except ImportError:
        raise MissingPackage("WeasyPrint is not installed", pip="weasyprint") from None
    return weasyprint


def render(html: str, font: str = CJK_FONT) -> bytes:
    """`html` (with its CSS inline) as PDF bytes."""
    weasyprint = _weasyprint()
    if not font_installed(font):
        raise MissingPackage(f'the font "{font}" is not installed', CJK_FONT_PACKAGE)
    pdf: bytes = weasyprint.HTML(string=html, base_url=None).write_pdf()
    return pdf
