"""The SIP agent: a gateway's call run by executing the TwiML the voice webhooks answer, as Twilio does.

One thread turns the SIP engine and every call's clock (prompts, key timeouts, recordings);
webhook requests, speech synthesis and downloads run in a small pool and hand their results
back to that thread through a queue, so a slow web never stalls another caller's audio.
When the web cannot be reached the caller hears, from this box, that the call is kept and
will be called back, and the call's status report waits in this box's spool until the web
answers again: the web then opens the call-back ticket, once (it de-duplicates by CallSid).
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import requests

from gateway import calls, prompts, recordings, spool
from gateway.phones import mask, try_normalise
from gateway.settings import Settings
from gateway.sip import twiml_runner as twiml
from gateway.sip.config import SipSettings
from gateway.sip.engine import Engine, IncomingCall
from gateway.sip.media import Clip, Media, finished
from gateway.sip.webhooks import CallFields, keep, post, upload

log = logging.getLogger(__name__)

VOICE_LEVEL = 6       # the engine's 0-255 level above which the caller is speaking (speech 9-28)
PROMPT_SLACK = 0.06   # a prompt is over a little after its length: the last packets are in flight
POOL = 8              # webhook requests at once: more than the calls an engine holds (4)

Prepared = tuple[twiml.Verb, tuple[Clip, ...]]
EngineFactory = Callable[[SipSettings], Engine]


@dataclass(frozen=True)
class Report:
    """A request the web must get whether or not anyone waits for its answer."""

    url: str
    form: dict[str, str]
    upload: Path | None = None  # a recording's WAV, sent as the body instead of a form


@dataclass
class Recording:
    verb: twiml.Record
    sid: str
    path: Path
    started: float = 0.0
    last_voice: float = 0.0
    voiced: bool = False


@dataclass
class CallRun:
    """One call on the agent: where it is in its TwiML and what it is waiting for."""

    call_id: str
    fields: CallFields
    started: float
    verbs: deque[Prepared] = field(default_factory=deque)
    epoch: int = 0                         # bumped by each request: late answers are dropped
    clips: deque[Clip] = field(default_factory=deque)
    clip_until: float | None = None
    after: Callable[[CallRun], None] | None = None
    pause_until: float | None = None
    gather: twiml.DigitCollector | None = None
    gather_until: float | None = None
    recording: Recording | None = None
    web_down: bool = False
    ended: bool = False
    keys: list[str] = field(default_factory=list)


class Agent:
    def __init__(self, settings: Settings, sip: SipSettings, engine: EngineFactory | None = None,
                 *, web_url: str | None = None, replay_every: float | None = None) -> None:
        self.settings = settings
        self.sip = sip
        self.make_engine = engine or _pjsip
        self.base = settings.public_url.rstrip("/")  # what requests are signed for
        self.web = (web_url or self.base).rstrip("/")  # where they are sent
        self.token = settings.webhook_token()
        self.folder = settings.data_dir / "sip"
        self.recordings = recordings.folder(settings)
        self.media = Media(self.folder / "prompts", local=self._own_file)
        self.replay_every = max(1.0, float(settings.retry_first if replay_every is None
                                           else replay_every))
        self.pool = ThreadPoolExecutor(max_workers=POOL, thread_name_prefix="sip-web")
        self.results: queue.Queue[Callable[[], None]] = queue.Queue()
        self.runs: dict[str, CallRun] = {}
        self.ended: deque[CallRun] = deque(maxlen=64)  # the latest finished calls (tests read them)
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._local = threading.local()
        self._replaying = threading.Lock()
        self._next_replay = 0.0
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None

    # --- running -----------------------------------------------------------------------


    def _own_file(self, url: str) -> Path | None:
        """A <Play> of a file this box has at 8 kHz: a stored prompt, or a take this agent
        recorded (a recorder hears it back; the web's copy is behind the login)."""
        found = prompts.sip_file(self.settings, url)
        if found is not None:
            return found
        prefix = f"{self.base}/recordings/"
        sid = url[len(prefix):].removesuffix(".wav") if url.startswith(prefix) else ""
        path = recordings.path(self.settings, sid)
        return path if path is not None and path.is_file() else None
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="sip-agent", daemon=True)
        self._thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the SIP agent did not start")

    def stop_soon(self) -> None:
        """Ask the loop to end (from a signal handler): calls are hung up, reports sent."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def run(self) -> None:
        """The loop thread: the engine is made, used and closed here only."""
        engine = self.make_engine(self.sip)
        self._engine = engine
        engine.on_call(self._incoming)
        engine.on_key(self._key)
        engine.on_hangup(self._hung_up)
        log.info("SIP agent on %s:%s (%s calls at once) for peers %s; web %s", self.sip.host,
                 self.sip.port, engine.capacity, ",".join(str(p) for p in self.sip.peers) or "(none)",
                 self.web)
        self.ready.set()
        try:
            while not self._stop.is_set():
                self._turn(engine)
            for call_id in list(self.runs):
                engine.hangup(call_id)
            end = time.monotonic() + 1.0
            while self.runs and time.monotonic() < end:
                self._turn(engine)
        finally:
            engine.close()
            self._engine = None
            del engine
            self.pool.shutdown(wait=True)
            self._drain()

    def _turn(self, engine: Engine) -> None:
        engine.run_once(10)
        self._drain()
        now = time.monotonic()
        for run in list(self.runs.values()):
            self._guard(run, "its clock", partial(self._tick, run, now))
        if now >= self._next_replay:
            self._next_replay = now + self.replay_every
            if spool.pending(self.folder):
                self.pool.submit(self.replay)

    def _drain(self) -> None:
        while True:
            try:
                done = self.results.get_nowait()
            except queue.Empty:
                return
            done()

    def _later(self, run: CallRun, job: Callable[[], Any], then: Callable[[CallRun, Any], None],
               failed: Callable[[CallRun, Exception], None]) -> None:
        """Run `job` in the pool; `then` (or `failed`) on the loop thread, if still current."""
        run.epoch += 1
        epoch = run.epoch

        def work() -> None:
            try:
                result = job()
            except Exception as exc:  # any failure of the web or of media: the caller is kept
                error = exc
                self.results.put(lambda: self._settle(run, epoch, failed, error))
                return
            self.results.put(lambda: self._settle(run, epoch, then, result))

        self.pool.submit(work)

    def _settle(self, run: CallRun, epoch: int, handler: Callable[[CallRun, Any], None],
                value: Any) -> None:
        """A pool job's result, taken only if the call is still waiting for it."""
        if not run.ended and run.epoch == epoch:
            self._guard(run, "the web's answer", lambda: handler(run, value))
        else:
            log.debug("SIP call %s: a late answer (%s, now %s) dropped", run.fields.call_sid[-6:],
                      epoch, run.epoch)

    @property
    def engine(self) -> Engine:
        assert self._engine is not None
        return self._engine

    def _guard(self, run: CallRun, what: str, step: Callable[[], None]) -> None:
        """Run one step of a call; if it fails, hang that call up rather than leave it silent.

        A call whose step raised would otherwise wait for nothing (no prompt, no timer, no
        request) until the caller gives up; hung up, its status report goes to the web, which
        makes it a call-back ticket like any unfinished call. The other calls go on.
        """
        try:
            step()
        except Exception:
            log.exception("SIP call %s: %s failed; hanging up (a call-back follows)",
                          run.fields.call_sid[-6:], what)
            if not run.ended:
                try:
                    self.engine.hangup(run.call_id)
                except Exception:
                    log.exception("SIP call %s: the hang-up failed too", run.fields.call_sid[-6:])

    # --- a call comes in ---------------------------------------------------------------

    def _incoming(self, call: IncomingCall) -> bool:
        if not self.sip.allows(call.source):
            log.warning("SIP: refused an INVITE from %s (not among HOTLINE_SIP_PEERS)", call.source)
            return False
        raw = call.caller.strip()
        caller = (try_normalise(raw, self.settings.default_region) or raw) if raw else ""
        fields = CallFields(call_sid=twiml.new_call_sid(), caller=caller,
                            called=self.sip.number or call.called)
        run = CallRun(call.call_id, fields, started=time.monotonic())
        self.runs[call.call_id] = run
        log.info("SIP call %s from %s (%s)", fields.call_sid[-6:], mask(caller), call.source)
        self._request(run, self.base + "/twilio/voice", fields.form())
        return True

    def _request(self, run: CallRun, url: str, form: dict[str, str]) -> None:
        """POST a step to the web; its TwiML becomes the call's verbs."""
        self._stop_media(run)
        log.debug("SIP call %s: asks %s (%s)", run.fields.call_sid[-6:], url[len(self.base):],
                  form.get("Digits", ""))

        def job() -> list[Prepared]:
            document = post(self._session(), self.token, url, form, via=self._via(url))
            return self._prepare(twiml.parse(document, url, within=self.base))

        self._later(run, job, self._got, self._web_failed)

    def _got(self, run: CallRun, prepared: list[Prepared]) -> None:
        run.verbs = deque(prepared)
        self._next(run)

    def _web_failed(self, run: CallRun, exc: Exception) -> None:
        """The web did not answer: the caller hears, from here, that the call is kept."""
        log.warning("SIP call %s: the web did not answer (%s); the call is kept for a call-back",
                    run.fields.call_sid[-6:], exc)
        run.web_down = True

        def job() -> list[Prepared]:
            return self._prepare(twiml.parse(calls.spooled(self.settings), self.base))

        def unspeakable(run: CallRun, exc: Exception) -> None:
            log.error("SIP call %s: cannot even speak the kept-call prompt: %s",
                      run.fields.call_sid[-6:], exc)
            self.engine.hangup(run.call_id)

        self._later(run, job, self._got, unspeakable)

    def _prepare(self, verbs: list[twiml.Verb]) -> list[Prepared]:
        """Each verb with the audio it plays, made ready (synthesised or fetched) before it starts."""
        out: list[Prepared] = []
        for verb in verbs:
            if isinstance(verb, twiml.Gather):
                out.append((verb, self._clips(verb.prompts)))
            elif isinstance(verb, twiml.Say | twiml.Play):
                out.append((verb, self._clips((verb,))))
            elif isinstance(verb, twiml.Record):
                out.append((verb, (self.media.beep(),)))
            else:
                out.append((verb, ()))
        return out

    def _clips(self, prompts: tuple[twiml.Say | twiml.Play | twiml.Pause, ...]) -> tuple[Clip, ...]:
        clips: list[Clip] = []
        for prompt in prompts:
            clip = self.media.say(prompt.text, prompt.language) if isinstance(prompt, twiml.Say) \
                else self.media.play(prompt.url) if isinstance(prompt, twiml.Play) else None
            if clip is not None:
                clips.append(clip)
        return tuple(clips)

    # --- the verbs ---------------------------------------------------------------------

    def _next(self, run: CallRun) -> None:
        if run.ended:
            return
        if not run.verbs:
            self.engine.hangup(run.call_id)  # Twilio ends a call whose TwiML runs out
            return
        verb, clips = run.verbs.popleft()
        log.debug("SIP call %s: %s", run.fields.call_sid[-6:], type(verb).__name__)
        if isinstance(verb, twiml.Say | twiml.Play):
            self._play(run, clips, self._next)
        elif isinstance(verb, twiml.Pause):
            run.pause_until = time.monotonic() + verb.length
        elif isinstance(verb, twiml.Gather):
            run.gather = twiml.DigitCollector(verb)
            self._play(run, clips, self._listen)
        elif isinstance(verb, twiml.Record):
            recording_sid = "RE" + secrets.token_hex(16)
            run.recording = Recording(verb, recording_sid, self.recordings / f"{recording_sid}.wav")
            self._play(run, clips, self._record)
        elif isinstance(verb, twiml.Redirect):
            self._request(run, verb.url, run.fields.form())
        else:
            self.engine.hangup(run.call_id)

    def _play(self, run: CallRun, clips: tuple[Clip, ...], then: Callable[[CallRun], None]) -> None:
        run.clips = deque(clips)
        run.after = then
        self._play_next(run)

    def _play_next(self, run: CallRun) -> None:
        if run.clips:
            clip = run.clips.popleft()
            self.engine.play(run.call_id, clip.path)
            run.clip_until = time.monotonic() + clip.seconds + PROMPT_SLACK
            return
        run.clip_until = None
        after, run.after = run.after, None
        if after is not None:
            after(run)

    def _stop_media(self, run: CallRun) -> None:
        if run.clip_until is not None:
            self.engine.stop_playback(run.call_id)
        run.clips.clear()
        run.clip_until = run.after = run.pause_until = run.gather_until = None
        run.gather = None

    def _listen(self, run: CallRun) -> None:
        if run.gather is not None:
            run.gather_until = time.monotonic() + run.gather.gather.timeout

    def _gathered(self, run: CallRun) -> None:
        collector = run.gather
        self._stop_media(run)
        if collector is not None and collector.digits:
            self._request(run, collector.gather.action, run.fields.form(Digits=collector.digits))
        else:
            self._next(run)  # no key: Twilio goes on to the next verb (the menu's Redirect)

    def _record(self, run: CallRun) -> None:
        rec = run.recording
        if rec is None:
            return
        self.engine.record(run.call_id, rec.path)
        rec.started = rec.last_voice = time.monotonic()

    def _recorded(self, run: CallRun, digits: str) -> list[Report]:
        """The recording ends: by a key, by silence, by its length, or by the caller hanging up.

        Returns what must still reach the web when the caller has hung up (Twilio still posts
        the action, its answer unused, then the recording callback): the caller sends it
        before the call's status, which the web reads the recording from.
        """
        rec, run.recording = run.recording, None
        if rec is None:
            return []
        self.engine.stop_recording(run.call_id)
        seconds = max(0.0, time.monotonic() - rec.started)
        if not rec.voiced or not rec.path.exists():
            rec.path.unlink(missing_ok=True)
            if not run.ended:
                self._next(run)  # nothing said: Twilio skips the action, as here
            return []
        url = f"{self.base}/recordings/{rec.sid}.wav"
        extra = {"RecordingUrl": url, "RecordingSid": rec.sid,
                 "RecordingDuration": str(round(seconds))}
        sent = [Report(f"{self.base}/twilio/sip/recording/{rec.sid}", {}, rec.path),
                Report(rec.verb.action, run.fields.form(**extra, Digits=digits))]
        if rec.verb.status_callback:
            sent.append(Report(rec.verb.status_callback, run.fields.form(
                **extra, RecordingStatus="completed", RecordingChannels="1",
                RecordingSource="RecordVerb")))
        if run.ended:
            return sent
        upload_, action, *callbacks = sent

        def job() -> list[Prepared]:
            try:
                self._send(upload_)
                document = self._send(action)
            except Exception:
                self._keep([upload_, *callbacks])
                raise
            self._deliver([*callbacks])
            return self._prepare(twiml.parse(document, action.url, within=self.base))

        self._stop_media(run)
        self._later(run, job, self._got, self._web_failed)
        return []

    # --- the engine's events -----------------------------------------------------------

    def _key(self, call_id: str, key: str) -> None:
        run = self.runs.get(call_id)
        if run is not None:
            self._guard(run, f"key {key}", lambda: self._take_key(run, key))

    def _take_key(self, run: CallRun, key: str) -> None:
        run.keys.append(key)
        if run.gather is not None:
            if run.clip_until is not None:  # barge-in: the key stops the prompt and is taken
                self.engine.stop_playback(run.call_id)
                run.clips.clear()
                run.clip_until = run.after = None
            if run.gather.key(key):
                self._gathered(run)
            else:
                self._listen(run)
        elif run.recording is not None and run.recording.started and \
                key in run.recording.verb.finish_on_key:
            self._recorded(run, key)
        else:  # Twilio ignores keys outside <Gather> and <Record>
            log.debug("SIP call %s: key %s outside a Gather or Record", run.fields.call_sid[-6:], key)

    def _tick(self, run: CallRun, now: float) -> None:
        if run.clip_until is not None and now >= run.clip_until:
            self._play_next(run)
        if run.pause_until is not None and now >= run.pause_until:
            run.pause_until = None
            self._next(run)
        if run.gather_until is not None and now >= run.gather_until:
            self._gathered(run)
        rec = run.recording
        if rec is not None and rec.started:
            if self.engine.level(run.call_id) > VOICE_LEVEL:
                rec.last_voice = now
                rec.voiced = True
            if now - rec.started >= rec.verb.max_length or now - rec.last_voice >= rec.verb.timeout:
                self._recorded(run, "")

    def _hung_up(self, call_id: str) -> None:
        run = self.runs.pop(call_id, None)
        if run is None:
            return
        run.ended = True
        try:
            reports = self._recorded(run, "hangup") if run.recording is not None else []
        except Exception:  # the recording is lost; the call's status (a call-back) must not be
            log.exception("SIP call %s: its recording could not be closed", run.fields.call_sid[-6:])
            reports = []
        duration = str(round(time.monotonic() - run.started))
        run.fields.status = "completed"
        reports.append(Report(self.base + "/twilio/status",
                              run.fields.form(CallStatus="completed", CallDuration=duration)))
        self.pool.submit(self._deliver, reports)
        self.ended.append(run)
        log.info("SIP call %s ended after %s s; keys %s", run.fields.call_sid[-6:], duration,
                 "".join(run.keys) or "none")

    # --- reports that need no answer ---------------------------------------------------

    def _send(self, report: Report) -> str:
        if report.upload is not None:
            if not finished(report.upload):
                log.warning("SIP: recording %s not closed in time; sent as it is", report.upload.name)
            upload(self._session(), self.token, report.url, report.upload, via=self._via(report.url))
            return ""
        return post(self._session(), self.token, report.url, report.form, via=self._via(report.url))

    def _via(self, url: str) -> str:
        """The address a webhook URL is reached at from here (the web may be on this box)."""
        return self.web + url[len(self.base):] if url.startswith(self.base + "/") else url

    def _deliver(self, reports: list[Report]) -> None:
        """Send these in order (in the pool); whatever the web does not take waits in the spool."""
        for index, report in enumerate(reports):
            try:
                self._send(report)
            except Exception as exc:
                log.warning("SIP: %d report(s) kept for when the web answers (%s)",
                            len(reports) - index, exc)
                self._keep(reports[index:])
                return

    def _keep(self, reports: list[Report]) -> None:
        for report in reports:
            if report.upload is not None:
                spool.append(self.folder, "sip-upload", {"_url": report.url,
                                                         "path": str(report.upload)})
            else:
                keep(self.folder, report.url, report.form)

    def replay(self) -> int:
        """Hand the web what it missed while it could not be reached; the web de-duplicates."""
        if not self._replaying.acquire(blocking=False):
            return 0
        try:
            return spool.replay(self.folder, self._replayed)
        finally:
            self._replaying.release()

    def _replayed(self, kind: str, payload: dict[str, str]) -> None:
        entry = dict(payload)
        url = entry.pop("_url")
        if kind == "sip-upload":
            path = Path(entry["path"])
            if path.exists():
                self._send(Report(url, {}, path))
        elif kind == "sip-voice":
            self._send(Report(url, entry))
        else:
            log.error("SIP spool: unknown entry %r dropped", kind)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session


def _pjsip(sip: SipSettings) -> Engine:
    from gateway.sip.pjsip_engine import PjsipEngine

    return PjsipEngine(sip.host, sip.port, sip.rtp_first, sip.rtp_last)
