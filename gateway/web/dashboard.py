"""The dashboard for village heads and team leaders: one blueprint, its parts kept in modules.

The plumbing every page stands on: auth (the login wall and sessions), csrf, headers, pages
(page words, filters), scope (which villages and tickets an account sees), errors, all on
site.bp. The pages by area: board (tickets), ledger (台账), notice_pages (notices and the
loudspeaker script), prompts_page (录音: recorded prompts), report (日报告 and CSV), senders_page
(the pool's phones and modems), users_page (accounts). Importing them attaches their routes
and hooks to `bp`, which create_app registers.
"""

from __future__ import annotations

from gateway.web import (
    auth,
    board,
    csrf,
    errors,
    headers,
    ledger,
    notice_pages,
    pages,
    prompts_page,
    report,
    scope,
    senders_page,
    users_page,
)
from gateway.web.site import bp

__all__ = ["auth", "board", "bp", "csrf", "errors", "headers", "ledger", "notice_pages", "pages",
           "prompts_page", "report", "scope", "senders_page", "users_page"]
