"""SMS out through Twilio's REST API (the twilio package's Client); errors sorted permanent or transient.

TWILIO_API_BASE replaces ``https://api.twilio.com`` in every request URL, so that a
Twilio-compatible provider or a local test server answers instead.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from gateway.channels import Channel, Receipt, TransportError
from gateway.context import Hotline
from gateway.messages import Message
from gateway.phones import mask

log = logging.getLogger(__name__)
# The package logs every request's headers and URL (with the number looked up) at INFO.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

NAME = "twilio"
# Refused for what the message is or where it goes: the same request can never succeed.
# 21211 invalid 'To', 21610 unsubscribed (texted STOP), 21614 cannot receive SMS, 21612 no
# route, 21408 region not enabled, 21217/21401/21407 bad or unsupported number, 21617 too long.
PERMANENT = frozenset({21211, 21610, 21614, 21612, 21408, 21217, 21401, 21407, 21617})
# Refused because of our account or configuration (wrong credentials, bad sender): nothing is
# wrong with the message, so it waits and goes once an operator has fixed the setting.
CONFIGURATION = frozenset({20003, 20404, 21212, 21606, 21659, 21603})
TRANSIENT_STATUS = frozenset({401, 403, 404, 408, 409, 425, 429})


class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio is untyped here
    """The package's HTTP client, sending what it would send to api.twilio.com to `base`."""

    def __init__(self, base: str, timeout: float) -> None:
        self.base = base.rstrip("/")
        # requests reads the proxy and CA settings from the environment at every request
        # (a quarter of a send's CPU): read them once here instead.
        super().__init__(timeout=timeout, proxy=get_environ_proxies(self.base) or None)
        self.session.trust_env = False
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self.session.verify = bundle

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.netloc.startswith("api.") and parts.netloc.endswith("twilio.com"):
            rest = url[len(f"{parts.scheme}://{parts.netloc}"):]
            return self.base + rest
        return url

    def request(self, method: str, url: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        return super().request(method, self.rewrite(url), params=params, data=data,
                               headers=headers, auth=auth, timeout=timeout,
                               allow_redirects=allow_redirects)


class TwilioChannel(Channel):
    """Messages through Twilio; `lookup` finds one an earlier, interrupted attempt left there."""

    name = NAME
    timeout = 15.0  # seconds for connecting and for the answer; a slow Twilio is a transient error

    def __init__(self, hl: Hotline) -> None:
        s = hl.settings
        if not s.twilio_configured:
            raise TransportError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set",
                                 permanent=False, code="config")
        self.hl = hl
        self.from_number = s.twilio_from_number or ""
        self.service_sid = s.twilio_messaging_service_sid or ""
        self.http = BaseUrlHttpClient(s.twilio_api_base, self.timeout)
        self.client = Client(s.twilio_account_sid, s.twilio_auth_token, http_client=self.http)
        # The client builds its API tree (and imports its modules) on first use: tens of ms,
        # more on a busy machine. Built here, before any pacing turn is claimed, so that a
        # worker's first text does not reach Twilio late and its next ones bunch behind it.
        self.messages = self.client.messages

    @property
    def sender(self) -> str:
        """What Twilio paces by: the From number, else the Messaging Service."""
        return self.from_number or self.service_sid or self.name

    def callback_url(self, message: Message) -> str:
        # The record id rides along, so a status callback can find a message whose sid the
        # worker never got to write down (it died while Twilio was answering).
        return f"{self.hl.settings.public_url}/twilio/status?m={message.id}"

    def send(self, message: Message) -> Receipt:
        kwargs: dict[str, Any] = {"to": message.to, "body": message.body,
                                  "status_callback": self.callback_url(message)}
        if self.from_number:
            kwargs["from_"] = self.from_number
        else:
            kwargs["messaging_service_sid"] = self.service_sid
        created = self._call(lambda: self.messages.create(**kwargs))
        log.info("twilio: %s to %s accepted as %s (%s)", message.id, mask(message.to),
                 created.sid, created.status)
        return Receipt(provider_id=str(created.sid), status="sent")

    def lookup(self, message: Message) -> Receipt | None:
        """The message as Twilio already has it, if an earlier attempt got through.

        Asked before sending again after an attempt whose outcome is unknown (a timeout,
        a worker that died mid-request): same recipient, same body, created since the record.
        """
        kwargs: dict[str, Any] = {"to": message.to, "limit": 20, "page_size": 20}
        if self.from_number:
            kwargs["from_"] = self.from_number
        found = self._call(lambda: self.messages.list(**kwargs))
        since = datetime.fromtimestamp(message.created_at - 5, UTC)
        for item in found:
            created = item.date_created
            if item.body == message.body and (created is None or created >= since):
                log.info("twilio: %s was already accepted as %s", message.id, item.sid)
                return Receipt(provider_id=str(item.sid), status="sent")
        return None

    def _call(self, request: Any) -> Any:
        try:
            return request()
        except TwilioRestException as exc:
            raise classify(exc.status, exc.code, exc.msg) from None
        except TwilioServiceException as exc:  # the newer RFC 9457 error shape
            raise classify(exc.status, exc.code, exc.detail or exc.title) from None
        except requests.Timeout:
            raise TransportError(f"Twilio did not answer within {self.timeout:g} s",
                                 permanent=False, code="timeout") from None
        except requests.RequestException as exc:
            if never_connected(exc):  # certain: Twilio never saw the request
                raise TransportError("Twilio refused the connection or could not be found",
                                     permanent=False, code="refused") from None
            raise TransportError(f"Twilio is unreachable: {type(exc).__name__}",
                                 permanent=False, code="unreachable") from None
        except TwilioException as exc:
            raise TransportError(f"Twilio client error: {exc}", permanent=False,
                                 code="client") from None


def never_connected(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached Twilio (refused, no such host, connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def classify(status: int, code: object, text: object) -> TransportError:
    """Twilio's error answer as one TransportError: permanent only when the message is refused."""
    code = int(str(code)) if str(code or "").isdigit() else 0
    status = int(status or 0)
    text = str(text or "").strip() or f"HTTP {status}"
    label = str(code or status)
    if code in PERMANENT:
        return TransportError(text, permanent=True, code=label)
    if code in CONFIGURATION or code == 20429 or status >= 500 or status in TRANSIENT_STATUS:
        if code in CONFIGURATION or status in (401, 403):
            log.error("twilio refused our account or sender (%s): %s; check the TWILIO_* settings",
                      label, text)
        return TransportError(text, permanent=False, code=label)
    # Any other 4xx: Twilio refused this request as written; sending it again cannot help.
    return TransportError(text, permanent=True, code=label)
