"""Helpers for the real-browser tier: JupyterLab and Voila servers, driven by Chromium.

Everything here is plain Python (no pytest) so that it can be reused from a REPL::

    with LabServer.start(tmp) as server:        # tmp/notebooks is the served root
        ...

The fixtures in ``conftest.py`` wire these together; tests only see :class:`LabPage`
(``lab`` fixture) and :class:`VoilaPage` (``voila`` fixture factory).
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

try:  # importable without playwright, so the tier can skip (or fail under CI) cleanly
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
except ImportError:  # pragma: no cover
    PlaywrightTimeoutError = TimeoutError  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
# HVMIO_UI_NOTEBOOKS points the tier at another notebooks dir (to try drafts).
NOTEBOOKS = Path(os.environ.get("HVMIO_UI_NOTEBOOKS", REPO_ROOT / "notebooks"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"

CHROMIUM = Path(os.environ.get("HVMIO_UI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 3000}

WIDGET_ERROR = "Error displaying widget"
WIDGET_LOADING = "Loading widget..."
WIDGET_ERROR_VIEW = ".jupyter-widgets-error-widget"

# Settings the browser sees on top of the schema defaults.  The notification override
# is what stops the "Would you like to receive official Jupyter news?" toast (4.x
# asks on first start; --LabApp.news_url= alone only stops the fetch, not the question).
# windowingMode "none" keeps every cell in the DOM, so locators never miss a widget
# that the notebook's virtual scrolling had not attached yet.
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

PY = sys.executable
# The Jupyter server config `make lab` / `hvmio-lab lab` start with (its pre_save_hook keeps a
# reopened notebook from showing "Error displaying widget"): the tier runs with it too.
SERVER_CONFIG = REPO_ROOT / "data" / "jupyter" / "jupyter_server_config.json"

# Timings measured by the tier (printed in the terminal summary, never asserted).
TIMINGS: dict[str, float] = {}


def record(key: str, value: float) -> None:
    TIMINGS[key] = value


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(tmp: Path) -> dict[str, str]:
    """Environment for a server: Jupyter's runtime/config/data dirs all under ``tmp``.

    The repo root goes on PYTHONPATH so kernels import ``hvmio_lab`` from the work tree
    even where the package was not pip-installed.
    """
    env = dict(os.environ)
    for var, sub in [
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("IPYTHONDIR", "ipython"),
        ("JUPYTERLAB_SETTINGS_DIR", "lab-user-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
    ]:
        d = tmp / sub
        d.mkdir(parents=True, exist_ok=True)
        env[var] = str(d)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO_ROOT), env.get("PYTHONPATH", "")] if p)
    env.pop("JUPYTER_TOKEN", None)
    env.pop("JUPYTER_PATH", None)
    return env


def stage_notebooks(dest: Path, extra: dict[str, str] | None = None) -> Path:
    """Lay out ``dest/notebooks`` (copies of the repo's notebooks) beside ``dest/data``.

    The layout mirrors the repo so that a notebook reading ``../data/guests/x.bin``
    still works.  ``extra`` maps file names to text written into the notebooks dir
    (used for stand-in notebooks).  Returns the notebooks dir, which is the served root.
    """
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")
    nb_dir = dest / "notebooks"
    if NOTEBOOKS.is_dir():
        shutil.copytree(NOTEBOOKS, nb_dir, ignore=ignore, dirs_exist_ok=True)
    nb_dir.mkdir(parents=True, exist_ok=True)
    if (REPO_ROOT / "data").is_dir():
        shutil.copytree(REPO_ROOT / "data", dest / "data", ignore=ignore, dirs_exist_ok=True)
    for name, text in (extra or {}).items():
        (nb_dir / name).write_text(text, encoding="utf-8")
    return nb_dir


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class ServerExited(RuntimeError):
    """The server process ended before it answered (e.g. its port was taken)."""


@dataclass
class ServerProcess:
    """A server child process, started in its own process group, stopped by its PID."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    base_url: str
    ready_path: str
    proc: subprocess.Popen | None = None
    startup_seconds: float = 0.0

    def start(self, timeout: float = 60.0) -> ServerProcess:
        t0 = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a kill can take its kernels along
        )
        log.close()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerExited(
                    f"{self.name} exited with {self.proc.returncode} before answering:\n"
                    + self.log_tail()
                )
            if _http_ok(self.base_url + self.ready_path):
                self.startup_seconds = time.monotonic() - t0
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server's PID; SIGKILL its process group if it does not exit."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # our own group: server + its kernels
            proc.wait(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LabServer(ServerProcess):
    """A private JupyterLab server; see :meth:`launch`."""

    root_dir: Path

    @classmethod
    def launch(cls, tmp: Path, root_dir: Path, timeout: float = 60.0) -> LabServer:
        settings = tmp / "lab-app-settings"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES), encoding="utf-8")
        env = isolated_env(tmp)
        last_error: Exception | None = None
        for _attempt in range(3):  # a free port can be taken between probe and bind
            port = free_port()
            argv = [
                PY, "-m", "jupyter", "lab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                "--IdentityProvider.token=",
                "--ServerApp.password=",
                "--ServerApp.allow_root=True",
                f"--ServerApp.root_dir={root_dir}",
                f"--LabApp.app_settings_dir={settings}",
                f"--LabApp.user_settings_dir={env['JUPYTERLAB_SETTINGS_DIR']}",
                f"--LabApp.workspaces_dir={env['JUPYTERLAB_WORKSPACES_DIR']}",
                "--LabApp.news_url=",
                "--LabApp.extension_manager=readonly",
                "--ServerApp.open_browser=False",
                f"--config={SERVER_CONFIG}",  # what `make lab` runs with: the save hook
            ]  # fmt: skip
            server = cls(
                name="jupyter-lab",
                argv=argv,
                env=env,
                cwd=tmp,
                log_path=tmp / "jupyter-lab.log",
                base_url=f"http://127.0.0.1:{port}",
                ready_path="/api/status",
            )
            server.root_dir = root_dir
            try:
                return server.start(timeout=timeout)  # type: ignore[return-value]
            except ServerExited as e:
                last_error = e
        raise RuntimeError(f"jupyter lab would not start: {last_error}")

    # -- REST API -----------------------------------------------------------------

    def _opener(self) -> tuple[urllib.request.OpenerDirector, str]:
        """An opener holding the server's ``_xsrf`` cookie, and that cookie's value."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(self.base_url + "/lab", timeout=10) as r:
            r.read()
        xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
        return opener, xsrf

    def api(self, method: str, path: str, body: object | None = None) -> object:
        opener, xsrf = self._opener()
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("X-XSRFToken", xsrf)  # Jupyter checks it against the _xsrf cookie
        req.add_header("Content-Type", "application/json")
        with opener.open(req, timeout=10) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def sessions(self) -> list[dict]:
        return self.api("GET", "/api/sessions")  # type: ignore[return-value]

    def delete_sessions(self) -> int:
        """Shut down every kernel session (DELETE /api/sessions/<id>); return how many."""
        n = 0
        for s in self.sessions():
            with contextlib.suppress(urllib.error.HTTPError):
                self.api("DELETE", f"/api/sessions/{s['id']}")
                n += 1
        return n


def launch_voila(tmp: Path, notebook: Path, timeout: float = 60.0) -> ServerProcess:
    """Serve one notebook with Voila on a free loopback port (``notebook`` a directory:
    serve every notebook in it, each at ``/voila/render/<name>``).

    Voila's root is the notebook's own directory (its default when given a notebook
    path), so staging the notebook in a temp dir gives a temp root.
    """
    root = notebook if notebook.is_dir() else notebook.parent
    env = isolated_env(tmp)
    conn = tmp / "voila-connections"
    conn.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        PY, "-m", "voila",
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        f"--Voila.root_dir={root}",
        f"--Voila.connection_dir_root={conn}",
        "--show_tracebacks=True",
        str(notebook),
    ]  # fmt: skip
    return ServerProcess(
        name="voila",
        argv=argv,
        env=env,
        cwd=root,
        log_path=tmp / "voila.log",
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/voila/static/voila.js",  # static: answering it starts no kernel
    ).start(timeout=timeout)


# --------------------------------------------------------------------------- pages


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80]


# True when any status-bar text item reads "<kernel name> | Idle".  The notebook
# toolbar's circle (.jp-Notebook-ExecutionIndicator) says idle while the status bar
# still reads "No Kernel | Initializing", so it cannot be trusted for this.
_JS_STATUSBAR_KERNEL = """
() => {
  for (const el of document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem')) {
    const m = (el.textContent || '').trim().match(/^(.+?) \\| (\\S+)$/);
    if (m) return [m[1], m[2]];
  }
  return null;
}
"""

_JS_KERNEL_IDLE = (
    "() => { const s = (" + _JS_STATUSBAR_KERNEL + ")(); "
    "return !!s && s[0] !== 'No Kernel' && s[1] === 'Idle'; }"
)

# Run All has finished when no prompt shows [*] and every non-empty code cell has an
# execution count -- or a traceback is showing (Run All stops at an error, and the
# cells after it go back to [ ]).  Outputs are cleared before Run All, so stale counts
# saved in the .ipynb cannot satisfy this early.
_JS_RUN_FINISHED = """
() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return false;
  let pending = 0;
  for (const cell of nb.querySelectorAll('.jp-CodeCell')) {
    const prompt = (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim();
    if (prompt.includes('*')) return false;
    const src = (cell.querySelector('.cm-content')?.textContent || '').trim();
    if (src && !/\\[\\d+\\]/.test(prompt)) pending += 1;
  }
  if (pending === 0) return true;
  return [...nb.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
    .some(el => (el.textContent || '').includes('Traceback'));
}
"""

_JS_TRACEBACKS = """
() => [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(el => el.textContent || '').filter(t => t.includes('Traceback') || /Error\\b/.test(t))
"""

# Times one click: a capture-phase listener stamps performance.now() at the click, a
# MutationObserver on the scope stamps it when the text of scope.querySelector(css)
# first differs.  Watching the scope, not the element, survives an HTML widget that
# replaces the element on every update.
_JS_ARM_LATENCY = """
([clickEl, scope, css]) => {
  const text = () => (scope.querySelector(css)?.textContent ?? null);
  const rec = window.__hvmioLatency = {t0: null, t1: null, before: text()};
  clickEl.addEventListener('click', () => { rec.t0 = performance.now(); },
                           {capture: true, once: true});
  const obs = new MutationObserver(() => {
    if (rec.t0 !== null && rec.t1 === null && text() !== rec.before) {
      rec.t1 = performance.now();
      obs.disconnect();
    }
  });
  obs.observe(scope, {subtree: true, childList: true, characterData: true, attributes: true});
}
"""


@dataclass
class BrowserPage:
    """What LabPage and VoilaPage share: screenshots, widget lookups, checks."""

    page: Page
    test_name: str
    timeout_ms: float = 30_000
    _shots: int = 0
    console_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    widget_errors_expected: bool = False  # only the harness's negative control sets it

    # -- evidence ------------------------------------------------------------------

    def snap(self, step: str) -> Path:
        """Screenshot the viewport to test-artifacts/ui/<test>--NN-<step>.png."""
        self._shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{_slug(self.test_name)}--{self._shots:02d}-{_slug(step)}.png"
        self.page.screenshot(path=str(path))
        return path

    def page_text(self) -> str:
        return self.page.evaluate("() => document.body ? document.body.textContent : ''")

    def wait_widgets_settled(self, timeout_ms: float = 15_000) -> None:
        """Wait until no widget view still reads "Loading widget..." (views render
        asynchronously, and a view that fails shows its error only then)."""
        try:
            self.page.wait_for_function(
                f"() => !document.body.textContent.includes({WIDGET_LOADING!r})",
                timeout=timeout_ms,
            )
        except PlaywrightTimeoutError:
            self.snap("widget-loading")
            raise AssertionError(
                f"a widget still reads {WIDGET_LOADING!r} after {timeout_ms / 1000:.0f}s"
            ) from None

    def assert_no_widget_errors(self) -> None:
        """No "Error displaying widget" text, and no ipywidgets 8 error placeholder.

        ipywidgets 8.1 shows "Error displaying widget" only when the model or view
        cannot be created at all; a view whose JS class fails to load is replaced by an
        ErrorWidgetView (``.jupyter-widgets-error-widget``, "Click to show javascript
        error.") instead, so both are checked.
        """
        self.wait_widgets_settled()
        text = self.page_text()
        if WIDGET_ERROR in text:
            i = text.index(WIDGET_ERROR)
            self.snap("widget-error")
            raise AssertionError(f"page shows {text[i : i + 200]!r}")
        broken = self.page.locator(WIDGET_ERROR_VIEW).count()
        if broken:
            self.snap("widget-error")
            raise AssertionError(
                f"page shows {broken} broken widget view(s) ({WIDGET_ERROR_VIEW}); "
                f"browser console: {self.console_errors[-3:]}"
            )

    def assert_no_traceback(self) -> None:
        text = self.page.evaluate("() => document.body.innerText")
        if "Traceback" in text:
            i = text.index("Traceback")
            self.snap("traceback")
            raise AssertionError(f"page shows a traceback: {text[max(0, i - 200) : i + 800]}")

    # -- widgets ---------------------------------------------------------------------

    def widget(self, css: str, index: int = 0, within: Locator | None = None) -> Locator:
        """The ``index``-th element matching ``css`` (e.g. ``.hvmio-bit``)."""
        return (within or self.page).locator(css).nth(index)

    def output_of(self, css: str, index: int = 0) -> Locator:
        """The ``index``-th cell output that contains ``css``: scope for one widget."""
        return (
            self.page.locator(".jp-OutputArea-output").filter(has=self.page.locator(css)).nth(index)
        )

    def widget_text(self, css: str, index: int = 0, within: Locator | None = None) -> str:
        loc = self.widget(css, index, within)
        loc.wait_for(state="attached", timeout=self.timeout_ms)
        return loc.inner_text().strip()

    def wait_text_change(
        self, css: str, before: str, index: int = 0, within: Locator | None = None
    ) -> str:
        """Wait until the element's text differs from ``before``; return the new text."""
        loc = self.widget(css, index, within)
        deadline = time.monotonic() + self.timeout_ms / 1000
        while True:
            text = loc.inner_text().strip()
            if text != before:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{css}[{index}] still reads {before!r}")
            self.page.wait_for_timeout(25)

    def set_text(self, css: str, value: str, index: int = 0, within: Locator | None = None):
        """Type ``value`` into a Text widget (class on its wrapper) and press Enter."""
        box = self.widget(css, index, within)
        field_ = (
            box
            if box.evaluate("e => e.matches('input, textarea')")
            else box.locator("input, textarea").first
        )
        field_.fill(value)
        field_.press("Enter")
        return field_

    def click_latency_ms(self, click: Locator, scope: Locator, css: str) -> float:
        """Click ``click``; return ms (page clock) until the text of ``css`` in ``scope``
        changes, i.e. one round trip browser -> kernel -> browser."""
        click.scroll_into_view_if_needed()
        self.page.evaluate(_JS_ARM_LATENCY, [click.element_handle(), scope.element_handle(), css])
        click.click()
        self.page.wait_for_function(
            "() => window.__hvmioLatency && window.__hvmioLatency.t1 !== null",
            timeout=self.timeout_ms,
        )
        return self.page.evaluate("() => window.__hvmioLatency.t1 - window.__hvmioLatency.t0")


@dataclass
class LabPage(BrowserPage):
    """A Chromium page on a private JupyterLab server."""

    server: LabServer | None = None
    kernel_states: list[str] = field(default_factory=list)

    def open_notebook(self, name: str, wait_kernel: bool = True) -> None:
        """Open ``name`` (relative to the server root) and wait for its kernel to idle
        (``wait_kernel=False``: only for the notebook to render, as a reader would)."""
        assert self.server is not None
        url = f"{self.server.base_url}/lab/tree/{quote(name)}?reset"  # ?reset: fresh layout
        self.page.goto(url)
        self.page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(timeout=self.timeout_ms)
        if wait_kernel:
            self.wait_kernel_idle()

    def kernel_status(self) -> tuple[str, str] | None:
        s = self.page.evaluate(_JS_STATUSBAR_KERNEL)
        return None if s is None else (s[0], s[1])

    def wait_kernel_idle(self, timeout_ms: float | None = None) -> None:
        """Wait for the status bar to read "<kernel> | Idle" (not the toolbar circle)."""
        timeout_ms = timeout_ms or self.timeout_ms
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            s = self.kernel_status()
            label = " | ".join(s) if s else "(no kernel status)"
            if not self.kernel_states or self.kernel_states[-1] != label:
                self.kernel_states.append(label)
            if s and s[0] != "No Kernel" and s[1] == "Idle":
                return
            if time.monotonic() > deadline:
                self.snap("kernel-not-idle")
                raise AssertionError(
                    f"kernel not idle after {timeout_ms / 1000:.0f}s; "
                    f"status bar went {self.kernel_states}"
                )
            self.page.wait_for_timeout(50)

    def menu(self, *path: str) -> None:
        """Click through the main menu, e.g. ``menu("Run", "Run All Cells")``."""
        self.page.get_by_role("menuitem", name=path[0], exact=True).click()
        for item in path[1:]:
            self.page.locator(".lm-Menu").get_by_role("menuitem", name=item).first.click()

    def run_all_cells(self) -> float:
        """Clear outputs, Run All, wait until finished and idle; return seconds taken.

        Raises AssertionError with the traceback text if a cell failed.
        """
        self.wait_kernel_idle()
        self.menu("Edit", "Clear Outputs of All Cells")
        t0 = time.monotonic()
        self.menu("Run", "Run All Cells")
        self.page.wait_for_function(_JS_RUN_FINISHED, timeout=self.timeout_ms * 4)
        self.wait_kernel_idle()
        elapsed = time.monotonic() - t0
        errors = self.page.evaluate(_JS_TRACEBACKS)
        tracebacks = [e for e in errors if "Traceback" in e]
        if tracebacks:
            self.snap("run-all-failed")
            raise AssertionError("a cell raised during Run All:\n" + "\n---\n".join(tracebacks))
        return elapsed

    def log_console_count(self) -> int:
        """Messages waiting in JupyterLab's log console (the status-bar counter)."""
        item = self.page.locator(".jp-LogConsoleStatusItem:not(.lm-mod-hidden)")
        if not item.count():
            return 0
        digits = re.sub(r"\D", "", item.first.inner_text())
        return int(digits or 0)

    def assert_no_traceback(self) -> None:
        """No traceback on the page, and nothing in the log console.

        In JupyterLab an exception raised in a widget callback (``observe``, ``on_click``)
        is not shown on the page at all: it goes to the log console, whose status-bar
        counter lights up. So a non-zero counter fails too, with the console's text.
        """
        super().assert_no_traceback()
        n = self.log_console_count()
        if n:
            self.page.locator(".jp-LogConsoleStatusItem").first.click()
            panel = self.page.locator(".jp-LogConsolePanel").first
            panel.wait_for(timeout=self.timeout_ms)
            self.page.wait_for_timeout(200)
            self.snap("log-console")
            raise AssertionError(
                f"{n} message(s) in the log console (a widget callback raised or printed):\n"
                + panel.inner_text()[-3000:]
            )

    def run_all(self, name: str) -> float:
        """Open ``name``, wait for a live idle kernel, Run All; screenshot each step."""
        self.open_notebook(name)
        self.snap("opened")
        elapsed = self.run_all_cells()
        self.snap("ran-all")
        self.assert_no_widget_errors()
        return elapsed


@dataclass
class VoilaPage(BrowserPage):
    """A Chromium page on a Voila server rendering one notebook."""

    server: ServerProcess | None = None

    def open(self, widget_css: str, path: str = "/") -> float:
        """Load the dashboard at ``path`` and wait until ``widget_css`` is rendered; return
        seconds."""
        assert self.server is not None
        t0 = time.monotonic()
        self.page.goto(self.server.base_url + path, timeout=self.timeout_ms * 2)
        self.page.locator(widget_css).first.wait_for(timeout=self.timeout_ms * 2)
        elapsed = time.monotonic() - t0
        self.snap("rendered")
        return elapsed
