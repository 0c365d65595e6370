"""The dashboard's blueprint and what every part of the web side shares.

`bp` carries the dashboard's pages and the app-wide hooks, each kept in a module of its own
concern: auth (the login wall), csrf, headers, pages (the page words and filters), scope
(which villages and tickets an account sees) and errors.
"""

from __future__ import annotations

from flask import Blueprint, current_app

from gateway.context import Hotline

bp = Blueprint("dashboard", __name__)

# Signed by the provider, not by a form or a login: no CSRF token, no page headers, and
# the bare status codes the provider expects.
WEBHOOK_PREFIXES = ("/twilio/", "/android/")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def hotline() -> Hotline:
    hl: Hotline = current_app.extensions["hotline"]
    return hl
