"""The security headers on every page (not on the webhooks' answers)."""

from __future__ import annotations

from flask import Response, request

from gateway.web.site import WEBHOOK_PREFIXES, bp

# Pages load only this site's scripts, styles and images; no page may be framed (clickjacking).
# Recordings play from the provider (https:). A view may set its own policy (the loudspeaker
# print page is one self-contained file with its own <style> and print button).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' https:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
# The print page: its inline <style>, and its one handler (onclick="window.print()") by hash.
PRINT_PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                  "font-src 'self'; script-src 'unsafe-hashes' "
                  "'sha256-MguIPR6qNR8D3B+eAlK+bIRTZe8t3wkOY4B/56Me9FU='; "
                  "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


@bp.after_app_request
def _headers(response: Response) -> Response:
    if request.path.startswith(WEBHOOK_PREFIXES):
        return response  # providers read XML and JSON; nothing is rendered there
    response.headers.setdefault("Content-Security-Policy", CSP)
    frames = "SAMEORIGIN" if "frame-ancestors 'self'" in response.headers[
        "Content-Security-Policy"] else "DENY"
    response.headers.setdefault("X-Frame-Options", frames)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
