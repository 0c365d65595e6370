"""A prompt recorded by phone and kept: its audio fetched, checked and stored like an upload.

Over Twilio the take is Twilio's recording (fetched with the account's credentials); over
the SIP agent it is the WAV the agent sent the web before the call went on
(gateway/web/sip_recordings.py), read from the data folder. A take the checks refuse (too
quiet, too long) changes nothing, and the recorder is told by SMS.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import requests

from gateway import messages, prompt_store, prompts, recordings, texts
from gateway.context import Hotline
from gateway.prompt_audio import AudioRefused
from gateway.settings import ROOT
from workers.runtime import hotline

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 30
SIMULATED = "sim/recording.wav"  # what the dashboard's phone simulator "says" into a <Record>


def keep_take(url: str, name: str, language: str, village: str, phone: str) -> str:
    """The job: store the take at `url` as prompt `name`; "kept", or "refused" (the recorder
    is texted why). A fetch that fails raises, so RQ retries it."""
    hl = hotline()
    with tempfile.TemporaryDirectory(prefix="take-") as work:
        try:
            source = _fetch(hl, url, Path(work))
            seconds = prompt_store.add(hl.settings, name, source, language, village)
        except AudioRefused as refused:
            log.warning("recording by phone: %s (%s) refused: %s", name, language, refused)
            body = texts.sms(hl.settings, "take_refused", village=village, why=refused.reason,
                             words=prompts.words(hl.settings, name, village))
            messages.queue_sms(hl, phone, body, kind="help")
            return "refused"
    log.info("recording by phone: %s (%s, %s) kept, %.1f s", name, language,
             village or "hotline-wide", seconds)
    return "kept"


def _fetch(hl: Hotline, url: str, folder: Path) -> Path:
    """The take's audio as a file in `folder`."""
    settings = hl.settings
    own = settings.public_url.rstrip("/")
    where = urlsplit(url)
    name = where.path.removeprefix("/recordings/").removesuffix(".wav")
    taken = recordings.path(settings, name) if where.path.startswith("/recordings/") else None
    if url.startswith(own + "/") and taken is not None:
        if not taken.is_file():
            raise FileNotFoundError(f"the SIP agent's take {name} has not arrived")
        return taken
    if urlsplit(url).path == f"/static/{SIMULATED}":  # a fixed file of ours: nothing fetched
        return ROOT / "gateway" / "web" / "static" / SIMULATED
    api = urlsplit(settings.twilio_api_base)
    if (where.scheme, where.netloc) != (api.scheme, api.netloc):
        raise AudioRefused(f"not a recording of ours or of Twilio's: {url[:80]}", "bad_source")
    auth = (settings.twilio_account_sid or "", settings.twilio_auth_token or "")
    response = requests.get(url + ".wav", auth=auth, timeout=FETCH_TIMEOUT)
    response.raise_for_status()
    path = folder / "take.wav"
    path.write_bytes(response.content)
    return path
