"""create_app(): the Flask application, built from settings, with one blueprint per area."""

from __future__ import annotations

from flask import Blueprint, Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.context import Hotline
from gateway.settings import ROOT, Settings


def create_app(settings: Settings | None = None, url: str = "", background: bool = False) -> Flask:
    """Build the app; nothing reads configuration at import time.

    `background` starts the thread that replays this host's spool once Redis is back
    (servers want it; tests call gateway.redis_away.replay themselves).
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder=str(ROOT / "templates" / "web"),
                static_folder=str(ROOT / "gateway" / "web" / "static"))
    app.config["SECRET_KEY"] = settings.ensure_secret_key()
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.public_url.startswith("https://")
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    app.extensions["hotline"] = Hotline(settings, url=url)
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies)  # nothing is served under a path prefix
    for blueprint in _blueprints():
        app.register_blueprint(blueprint)
    if background:
        from gateway import redis_away

        redis_away.start_replayer(app.extensions["hotline"])
    return app


def _blueprints() -> list[Blueprint]:
    """One blueprint per area; a channel's inbound webhooks live in its folder (gateway/channels/)."""
    from gateway.channels.android import webhook as android
    from gateway.channels.twilio import sms as twilio_sms
    from gateway.channels.twilio import status as twilio_status
    from gateway.web import dashboard, health, simulator, sip_recordings, twilio_voice

    return [health.bp, twilio_voice.bp, twilio_sms.bp, twilio_status.bp, android.bp,
            dashboard.bp, simulator.bp, sip_recordings.bp]
