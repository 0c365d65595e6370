"""The dashboard for village heads and team leaders: one blueprint, its pages kept in modules by area.

auth (login wall, CSRF, words), board (tickets), ledger (台账), notice_pages (notices and the
loudspeaker script), prompts_page (录音: recorded prompts), report (日报告 and CSV), users_page
(accounts). Importing them attaches
their routes to `bp`, which create_app registers.
"""

from __future__ import annotations

from gateway.web import board, ledger, notice_pages, prompts_page, report, users_page
from gateway.web.auth import bp

__all__ = ["board", "bp", "ledger", "notice_pages", "prompts_page", "report", "users_page"]
