"""A newcomer's first visit, in headless Chromium against a real `hotline run`: call, see, take, print."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "browser-test-password"
WAIT = 20  # seconds any one thing may take to show up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """`hotline run` on a free port with a data folder of its own; yields its base URL."""
    port = _free_port()
    # A short folder: the embedded Redis listens on a unix socket inside it (path length limit).
    data = Path(tempfile.mkdtemp(prefix="hlb"))
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REDIS_", "HOTLINE_", "TWILIO_", "ANDROID_", "GAMMU_"))}
    env |= {"HOTLINE_DATA_DIR": str(data), "HOTLINE_ADMIN_PASSWORD": PASSWORD,
            "HOTLINE_PUBLIC_URL": base, "HOTLINE_SMS_RATE": "0", "HOTLINE_SIMULATOR": "on"}
    log = (data / "run.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("hotline run did not start:\n" + (data / "run.log").read_text())
            time.sleep(0.3)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_tool("chromium", "chromium")
    chromedriver = require_tool("chromedriver", "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="hlchrome")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--window-size=1280,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP reports land there
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def until(driver: Any, what: Callable[[Any], Any], message: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The inbox and the board redraw themselves every few seconds: an element may go stale.
    return WebDriverWait(driver, WAIT, poll_frequency=0.2,
                         ignored_exceptions=[StaleElementReferenceException]).until(what, message)


def text_shown(driver: Any, css: str, words: str) -> Callable[[Any], bool]:
    from selenium.webdriver.common.by import By

    def check(_: Any) -> bool:
        return any(words in e.text for e in driver.find_elements(By.CSS_SELECTOR, css))

    return check


def test_a_newcomer_calls_sees_the_ticket_takes_it_by_text_and_prints_a_notice(
        server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    b = browser
    # Log in.
    b.get(f"{server}/")
    assert "/login" in b.current_url
    b.find_element(By.NAME, "name").send_keys("admin")
    b.find_element(By.NAME, "password").send_keys(PASSWORD)
    b.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    until(b, text_shown(b, "h1", "求助工单"), "the board after login")

    # Call the hotline as 王秀英 and ask for medicine: 1, then 1 to confirm.
    b.get(f"{server}/simulator")
    Select(b.find_element(By.ID, "person")).select_by_value("+8613900000001")
    b.find_element(By.ID, "call").click()
    for key in ("1", "1"):
        until(b, lambda d: d.find_element(By.CSS_SELECTOR, '.key[data-key="1"]').is_enabled()
              and text_shown(d, "#screen .hint", "请按键")(d), "the menu waits for a key")
        before = len(b.find_elements(By.CSS_SELECTOR, "#screen p"))
        b.find_element(By.CSS_SELECTOR, f'.key[data-key="{key}"]').click()
        until(b, lambda d, n=before: len(d.find_elements(By.CSS_SELECTOR, "#screen p")) > n + 1,
              "the hotline answers the key")
    until(b, text_shown(b, "#screen", "对方已挂断"), "the call ends after the code is read")

    # The ticket is on the board.
    b.get(f"{server}/board")
    row = until(b, lambda d: next((r for r in d.find_elements(By.CSS_SELECTOR, "#board-rows tr")
                                   if "王秀英" in r.text), None), "the ticket on the board")
    code = row.find_element(By.CSS_SELECTOR, "a.code").text.lstrip("#")
    assert code.isdigit() and "送药" in row.text

    # 王芳, a volunteer of that grid, gets the offer by SMS and takes it by replying.
    b.get(f"{server}/simulator")
    Select(b.find_element(By.ID, "person")).select_by_value("+8613800000003")
    until(b, text_shown(b, "#inbox li", f"#{code}"), "the offer in the volunteer's inbox")
    b.find_element(By.ID, "sms-body").send_keys(f"接 {code}")
    b.find_element(By.ID, "sms-send").click()
    until(b, lambda d: d.find_element(By.ID, "inbox").text.count(code) >= 3,
          "the text and its reply in the inbox")

    # The board shows it taken by 王芳.
    b.get(f"{server}/board")
    until(b, lambda d: any(code in r.text and "已接单" in r.text and "王芳" in r.text
                           for r in d.find_elements(By.CSS_SELECTOR, "#board-rows tr")),
          "the ticket taken on the board")

    # Write a notice and open its print page.
    b.get(f"{server}/notices")
    Select(b.find_element(By.NAME, "village")).select_by_visible_text("联合村")
    b.find_element(By.NAME, "body").send_keys("明天上午9点在村委会打疫苗，请带身份证。")
    b.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    link = until(b, lambda d: d.find_element(By.ID, "print-link"), "the notice page")
    b.get(link.get_attribute("href"))
    until(b, text_shown(b, "body", "打疫苗"), "the print page with the notice")
    assert "/broadcast.html" in b.current_url


def test_every_page_works_under_its_content_security_policy_and_none_can_be_framed(
        server: str, browser: Any) -> None:
    """Issue 18.10: CSP and X-Frame-Options on pages; the dashboard breaks nowhere under them."""
    from selenium.webdriver.common.by import By

    b = browser
    with urllib.request.urlopen(f"{server}/login", timeout=10) as answer:
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    b.get(f"{server}/login")
    b.find_element(By.NAME, "name").send_keys("admin")
    b.find_element(By.NAME, "password").send_keys(PASSWORD)
    b.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    until(b, text_shown(b, "h1", "求助工单"), "the board after login")
    b.get_log("browser")  # what came before is not under test
    for path in ("/board", "/ledger", "/notices", "/report", "/senders", "/users", "/simulator"):
        b.get(server + path)
        until(b, lambda d: d.execute_script("return document.readyState") == "complete", path)
    # the board's own script still refreshes it, the report's print button still prints
    b.get(f"{server}/report")
    b.execute_script("window.printed = false; window.print = function () { window.printed = true; };")
    b.find_element(By.CSS_SELECTOR, "[data-print]").click()
    until(b, lambda d: d.execute_script("return window.printed"), "the print button prints")
    # the loudspeaker print page: its own <style> and print button are allowed
    b.get(f"{server}/notices")
    from selenium.webdriver.support.ui import Select
    Select(b.find_element(By.NAME, "village")).select_by_visible_text("联合村")
    b.find_element(By.NAME, "body").send_keys("明天开会。")
    b.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    link = until(b, lambda d: d.find_element(By.ID, "print-link"), "the notice page")
    b.get(link.get_attribute("href"))
    until(b, text_shown(b, "body", "明天开会"), "the print page")
    size = b.execute_script("return getComputedStyle(document.querySelector('p')).fontSize")
    assert float(size.rstrip("px")) >= 28, size  # its inline <style> applied
    b.execute_script("window.printed = false; window.print = function () { window.printed = true; };")
    b.find_element(By.CSS_SELECTOR, "button.print").click()
    until(b, lambda d: d.execute_script("return window.printed"), "the print page's button")
    refused = [e["message"] for e in b.get_log("browser")
               if "Content Security Policy" in e["message"] or e["level"] == "SEVERE"]
    assert refused == []


def test_an_admin_records_the_mongolian_menu_on_the_page_and_bater_hears_it(
        server: str, browser: Any, tmp_path: Path) -> None:
    """Issue 16: upload on the 录音 page, see it kept and playable, hear it in a call, remove it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.audio_files import encoded

    require_tool("ffmpeg", "ffmpeg")
    b = browser
    b.get(f"{server}/login")
    if "/login" in b.current_url:
        b.find_element(By.NAME, "name").send_keys("admin")
        b.find_element(By.NAME, "password").send_keys(PASSWORD)
        b.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
        until(b, text_shown(b, "h1", "求助工单"), "the board after login")
    b.find_element(By.LINK_TEXT, "录音").click()
    Select(b.find_element(By.NAME, "language")).select_by_visible_text("蒙古语")
    b.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    # The row is on the page before the filter too: wait for the Mongolian page's own row.
    shown = until(b, lambda d: "language=mn" in d.current_url
                  and d.find_element(By.ID, "prompt-menu").text, "the Mongolian menu's row")
    assert "送药请按1" in shown and "没有录音" in shown
    row = b.find_element(By.ID, "prompt-menu")
    row.find_element(By.NAME, "file").send_keys(str(encoded(tmp_path / "menu.m4a")))
    row.find_element(By.CSS_SELECTOR, "form.upload button").click()
    until(b, text_shown(b, ".flash", "menu 的录音已保存"), "the upload kept")
    row = b.find_element(By.ID, "prompt-menu")
    assert "全热线录音" in row.text
    src = row.find_element(By.TAG_NAME, "audio").get_attribute("src")
    assert "/audio/mn/menu.mp3?v=" in src
    with urllib.request.urlopen(src, timeout=10) as answer:  # public, as Twilio fetches it
        assert answer.status == 200 and answer.headers["Content-Type"] == "audio/mpeg"

    # 巴特尔 (Mongolian, 团结村) calls in the simulator: the menu plays from the recording.
    b.get(f"{server}/simulator")
    Select(b.find_element(By.ID, "person")).select_by_value("+8613900000004")
    b.find_element(By.ID, "call").click()
    until(b, lambda d: any("/audio/mn/menu.mp3" in (a.get_attribute("src") or "")
                           for a in d.find_elements(By.CSS_SELECTOR, "#screen audio")),
          "the Mongolian menu played")
    assert "如有危及生命的紧急情况" in b.find_element(By.ID, "screen").text  # Mandarin where none
    b.find_element(By.ID, "hangup").click()

    b.get(f"{server}/prompts?language=mn")
    b.find_element(By.CSS_SELECTOR, "#prompt-menu form.remove button").click()
    until(b, text_shown(b, ".flash", "menu 的录音已删除"), "the recording removed")
    assert "没有录音" in b.find_element(By.ID, "prompt-menu").text

    # Recording by phone: the number and PIN at the foot of the page.
    form = b.find_element(By.CSS_SELECTOR, "#by-phone form")
    form.find_element(By.NAME, "phone").send_keys("138 0000 0041")
    form.find_element(By.NAME, "pin").send_keys("482915")
    form.find_element(By.CSS_SELECTOR, "button").click()
    until(b, text_shown(b, ".flash", "电话录音已开通"), "recording by phone set")
    assert "+8613800000041" in b.find_element(By.ID, "by-phone").text
    refused = [e["message"] for e in b.get_log("browser") if "favicon.ico" not in e["message"]
               and ("Content Security Policy" in e["message"] or e["level"] == "SEVERE")]
    assert refused == []
