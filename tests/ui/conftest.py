"""Fixtures for the real-browser tier (``@pytest.mark.ui``).

* ``browser``     one headless Debian Chromium for the session (``browser_context``:
                  one context in it; every test opens and closes its own page)
* ``lab_server``  one private JupyterLab server for the session, serving copies of
                  ``notebooks/`` (plus the UI stand-in notebook) from a temp root
* ``lab``         a fresh browser context + page on that server (``LabPage``)
* ``voila_server`` one Voila server for the session, serving every chapter at
                  ``/voila/render/<name>``
* ``voila_page``  a fresh page on it (``VoilaPage``); ``open(css, path)`` loads a chapter

Without /usr/bin/chromium the tier is skipped, unless CI=true, where it fails.
Requests to anything but the local servers are aborted (the tier must work offline)
and listed on the page object's ``blocked_requests``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from . import lab as L
from .broken import BROKEN_NAME, broken_notebook

_TIER: dict[str, float] = {}
record = L.record


def _need(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"UI tier: {what} is missing, and CI=true requires it", pytrace=False)
    pytest.skip(f"UI tier skipped: {what} not available")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    _need(str(L.CHROMIUM), L.CHROMIUM.exists())
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("the playwright Python package", False)
    # Screenshots of this run only: clear what an earlier run left.
    for old in L.ARTIFACTS.glob("*.png"):
        old.unlink()
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=str(L.CHROMIUM), headless=True, args=L.CHROMIUM_ARGS)
    except Exception:
        pw.stop()
        raise
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[L.LabServer]:
    tmp = tmp_path_factory.mktemp("ui-lab")
    extra = {BROKEN_NAME: broken_notebook()}
    root = L.stage_notebooks(tmp / "work", extra)
    server = L.LabServer.launch(tmp, root)
    record("lab server start (s)", server.startup_seconds)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser_context(browser: object) -> Iterator[object]:
    """One context for the session (a new one costs ~1 s); each test gets its own page."""
    ctx = browser.new_context(viewport=L.VIEWPORT)  # type: ignore[attr-defined]
    yield ctx
    ctx.close()


def _offline_page(ctx: object, blocked: list[str]):
    """A new page that lets only loopback requests through (the rest are recorded)."""
    page = ctx.new_page()  # type: ignore[attr-defined]

    def is_external(url: str) -> bool:
        return url.startswith(("http:", "https:", "ws:", "wss:")) and not url.startswith(
            ("http://127.0.0.1:", "ws://127.0.0.1:")
        )

    def abort(route) -> None:
        blocked.append(route.request.url)
        route.abort("internetdisconnected")

    page.route(is_external, abort)
    return page


def _watch(page: L.BrowserPage) -> None:
    def on_console(msg) -> None:
        if msg.type == "error":
            page.console_errors.append(msg.text)

    page.page.on("console", on_console)
    page.page.on("pageerror", lambda exc: page.console_errors.append(f"pageerror: {exc}"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    setattr(item, f"_ui_rep_{rep.when}", rep)
    return rep


def _passed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "_ui_rep_call", None)
    return rep is not None and rep.passed


@pytest.fixture
def lab(
    browser_context: object, lab_server: L.LabServer, request: pytest.FixtureRequest
) -> Iterator[L.LabPage]:
    blocked: list[str] = []
    page = L.LabPage(
        page=_offline_page(browser_context, blocked),
        test_name=request.node.name,
        server=lab_server,
        blocked_requests=blocked,
    )
    _watch(page)
    try:
        yield page
        if _passed(request) and not page.widget_errors_expected:
            page.assert_no_widget_errors()  # safety net: every UI test ends with this
    finally:
        if not _passed(request):
            _evidence(page, lab_server)
        page.page.close()
        lab_server.delete_sessions()


@pytest.fixture(scope="session")
def voila_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[L.ServerProcess]:
    """One Voila server for the session, serving every chapter at /voila/render/<name>."""
    tmp = tmp_path_factory.mktemp("ui-voila")
    root = L.stage_notebooks(tmp / "work")
    server = L.launch_voila(tmp, root)
    record("voila server start (s)", server.startup_seconds)
    yield server
    server.stop()


@pytest.fixture
def voila_page(
    browser_context: object, voila_server: L.ServerProcess, request: pytest.FixtureRequest
) -> Iterator[L.VoilaPage]:
    """A fresh page on the session's Voila server; ``page.open(css, f"/voila/render/{nb}")``."""
    blocked: list[str] = []
    vp = L.VoilaPage(
        page=_offline_page(browser_context, blocked),
        test_name=request.node.name,
        server=voila_server,
        blocked_requests=blocked,
    )
    _watch(vp)
    try:
        yield vp
        if _passed(request):
            vp.assert_no_widget_errors()
    finally:
        if not _passed(request):
            _evidence(vp, voila_server)
        vp.page.close()  # closing the page ends its kernel: Voila culls it


def _evidence(page: L.BrowserPage, server: L.ServerProcess) -> None:
    """On failure: last screenshot, console errors and server log into the report."""
    try:
        shot = page.snap("failure")
        print(f"screenshot: {shot}")
    except Exception as e:
        print(f"(no failure screenshot: {e})")
    if page.console_errors:
        print("browser console errors:\n  " + "\n  ".join(page.console_errors[-20:]))
    print(f"{server.name} log tail:\n{server.log_tail()}")


# ------------------------------------------------------------------- tier timing


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("ui"):
        _TIER.setdefault("start", time.monotonic())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    try:
        return (yield)
    finally:
        if item.get_closest_marker("ui"):
            _TIER["end"] = time.monotonic()


def pytest_terminal_summary(terminalreporter) -> None:
    if not _TIER.get("end") or not L.TIMINGS:
        return
    tr = terminalreporter
    tr.section("hvmio UI tier timings")
    tr.write_line(f"UI tier wall time: {_TIER['end'] - _TIER['start']:.1f} s (aim: under 300 s)")
    for key, value in L.TIMINGS.items():
        tr.write_line(f"  {key}: {value:.1f}")
