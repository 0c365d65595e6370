"""A menu step written as TwiML with the twilio package's VoiceResponse, so Twilio can play it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twilio.twiml.voice_response import Gather as TwimlGather
from twilio.twiml.voice_response import VoiceResponse

from ivr.machine import Gather, Hangup, Prompt, Record, Step

# <Say language=...> for each prompt language; Twilio's basic voices take "en", Mandarin "zh-CN".
SAY_LANGUAGE = {"zh": "zh-CN", "en": "en"}
# Keys that end a recording: any key, so a caller who presses something is not kept waiting.
RECORD_FINISH_KEYS = "1234567890*#"


@dataclass(frozen=True)
class Spoken:
    """A prompt made ready to play: a recorded file's URL, or else the words to say."""

    text: str
    url: str = ""


Speaker = Callable[[Prompt], Spoken]


def action_url(base_url: str, path: str, step: int) -> str:
    return f"{base_url}{path}?step={step}"


def render(step: Step, speak: Speaker, *, base_url: str, language: str,
           voice: str | None = None) -> str:
    """The TwiML document for `step`; actions are absolute URLs under `base_url`."""
    response = VoiceResponse()
    lang = SAY_LANGUAGE.get(language, "zh-CN")

    def emit(parent: VoiceResponse | TwimlGather, prompt: Prompt) -> None:
        spoken = speak(prompt)
        if spoken.url:
            parent.play(spoken.url)
            return
        if not spoken.text:
            return
        if voice and voice.startswith(("Polly.", "Google.")):
            # Neural voices take SSML: a little slower is clearer for an elderly listener.
            say = parent.say(language=lang, voice=voice)
            say.prosody(spoken.text, rate="90%")
        else:
            parent.say(spoken.text, language=lang, **({"voice": voice} if voice else {}))

    for prompt in step.intro:
        emit(response, prompt)
    if step.intro:
        response.pause(length=1)
    then = step.then
    if isinstance(then, Gather):
        url = action_url(base_url, then.path, step.call.step)
        gather = response.gather(input="dtmf", num_digits=then.digits, timeout=then.timeout,
                                 finish_on_key="", action=url, method="POST")
        for prompt in step.prompts:
            emit(gather, prompt)
        # No key pressed: Twilio moves on to the Redirect, so the caller is never dropped.
        response.redirect(url, method="POST")
    elif isinstance(then, Record):
        for prompt in step.prompts:
            emit(response, prompt)
        url = action_url(base_url, then.path, step.call.step)
        response.record(action=url, method="POST", max_length=then.max_length,
                        timeout=then.timeout, play_beep=True, finish_on_key=RECORD_FINISH_KEYS,
                        recording_status_callback=base_url + then.callback,
                        recording_status_callback_method="POST",
                        recording_status_callback_event="completed")
        # Nothing recorded: Twilio skips the action and follows this Redirect instead.
        response.redirect(url, method="POST")
    else:
        for prompt in step.prompts:
            emit(response, prompt)
        if isinstance(then, Hangup):
            response.hangup()
    return str(response.to_xml())
