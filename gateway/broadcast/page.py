"""The loudspeaker script as a print-ready HTML page: very large type, one self-contained file."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from gateway.broadcast.script import Script
from gateway.settings import Settings
from gateway.texts import village_folder

# Named explicitly: letting fontconfig choose among a CJK family's many faces is slow (about
# 24 s a page with fonts-noto-cjk, against 1.5 s for this one) and may pick a face without
# the glyphs. The PDF uses this one alone; a browser falls back to what its machine has.
CJK_FONT = "WenQuanYi Zen Hei"
CJK_FONT_PACKAGE = "fonts-wqy-zenhei"
BROWSER_FALLBACKS = ('"Noto Sans CJK SC"', '"Source Han Sans SC"', '"Microsoft YaHei"',
                     '"PingFang SC"', '"SimHei"', "sans-serif")
PAPERS = ("A4", "A5")
_PHONE = re.compile(r"\+?\d[\d\- ]{5,}\d")


def _keep_numbers_whole(paragraph: str) -> Markup:
    """The paragraph escaped, each phone number in a span that never breaks across lines, so
    the reader at the microphone never reads half a number."""
    return Markup(_PHONE.sub(lambda m: f'<span class="nobr">{m.group(0)}</span>',
                             str(escape(paragraph))))


@lru_cache(maxsize=16)
def _environment(root: str, folder: str) -> Environment:
    """`folder`: the village's own folder as village_folder listed it (never the ledger's name)."""
    base = Path(root)
    loaders = [FileSystemLoader(str(base / "villages" / folder))] if folder else []
    loaders.append(FileSystemLoader(str(base)))
    return SandboxedEnvironment(loader=ChoiceLoader(loaders), undefined=StrictUndefined,
                               autoescape=select_autoescape(["html"]), trim_blocks=True,
                               lstrip_blocks=True)


def render(settings: Settings, script: Script, *, paper: str | None = None,
           dashboard: bool = False, for_pdf: bool = False) -> str:
    """The page (templates/broadcast/<lang>/page.html). `paper` fixes A4 or A5 (the PDF);
    without it the browser prints on whatever paper is chosen. `dashboard` adds a Print button."""
    if paper is not None and paper not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(PAPERS)}")
    family = f'"{CJK_FONT}"' if for_pdf else ", ".join((f'"{CJK_FONT}"', *BROWSER_FALLBACKS))
    root = settings.templates_dir
    env = _environment(str(root), village_folder(root / "villages", script.village) or "")
    template = env.get_template(f"broadcast/{script.language}/page.html")
    context = script.context() | {
        "paragraphs": [_keep_numbers_whole(p) for p in script.paragraphs]}
    return template.render(**context, paper=paper, dashboard=dashboard, font_family=family,
                           language=script.language)
