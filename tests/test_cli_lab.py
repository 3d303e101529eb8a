"""``hvmio-lab lab``: the learner's copy of the workbook, and the JupyterLab it starts.

The server tests start the real launcher (as ``make lab`` and a pip install do) on a free port
and ask the running server what a learner would meet: chapter 00's URL printed, no news
toast, saving through the workbook's pre-save hook, and a kernel that finds ``hvmio-lab``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from hvmio_lab import resources
from hvmio_lab.cli.lab import RECORD, copy_workbook, install_config, workbook_files

SCRIPT = Path(sys.executable).with_name("hvmio-lab")


# -- the copy ------------------------------------------------------------------------------------


def test_the_copy_holds_every_notebook_the_docs_and_what_they_link_to(tmp_path):
    source = resources.workbook()
    names = workbook_files(source)
    chapters = sorted(p.name for p in (source / "notebooks").glob("*.ipynb"))
    assert [n.split("/")[1] for n in names if n.startswith("notebooks/")] == chapters
    assert "notebooks/00-start-here.ipynb" in names and "docs/IO_EXITS.md" in names
    report = copy_workbook(source, tmp_path)
    assert sorted(report.copied) == names
    for name in names:
        assert (tmp_path / name).read_bytes() == (source / name).read_bytes(), name
    # Every relative link in the copied notebooks' Markdown lands on a copied file.
    for notebook in (tmp_path / "notebooks").glob("*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                for target in re.findall(r"\]\((\.\./[^)#\s]+)", "".join(cell["source"])):
                    assert (notebook.parent / target).is_file(), (notebook.name, target)


def test_a_link_to_a_guest_source_is_copied_too(tmp_path):
    source = tmp_path / "src"
    (source / "notebooks").mkdir(parents=True)
    (source / "docs").mkdir()
    (source / "docs" / "facts.md").write_text("facts")
    (source / "data" / "guests").mkdir(parents=True)
    (source / "data" / "guests" / "uart_hello.asm").write_text("out dx, al")
    (source / "data" / "guests" / "uart_hello.bin").write_bytes(b"\xee")
    cell = {"cell_type": "markdown", "metadata": {}, "source": [
        "See [the source](../data/guests/uart_hello.asm#L3), [SDM](https://intel.com/sdm) ",
        "and <a href=\"../docs/facts.md\">facts</a>.",
    ]}  # fmt: skip
    (source / "notebooks" / "00-x.ipynb").write_text(json.dumps({"cells": [cell]}))
    assert workbook_files(source) == [
        "data/guests/uart_hello.asm", "docs/facts.md", "notebooks/00-x.ipynb",
    ]  # fmt: skip


def test_a_learners_edit_is_kept_and_named_and_force_replaces_it(tmp_path):
    source = resources.workbook()
    copy_workbook(source, tmp_path)
    edited = tmp_path / "notebooks" / "01-the-io-exit.ipynb"
    edited.write_text("my notes")
    (tmp_path / "docs" / "IO_EXITS.md").unlink()  # a deleted file comes back
    again = copy_workbook(source, tmp_path)
    assert again.kept == ["notebooks/01-the-io-exit.ipynb"] and again.copied == ["docs/IO_EXITS.md"]
    assert edited.read_text() == "my notes"
    assert any("kept your edited notebooks/01-the-io-exit.ipynb" in line for line in again.lines())
    forced = copy_workbook(source, tmp_path, force=True)
    assert forced.replaced == ["notebooks/01-the-io-exit.ipynb"]
    assert edited.read_bytes() == (source / "notebooks" / "01-the-io-exit.ipynb").read_bytes()


def test_an_upgrade_updates_untouched_copies_only(tmp_path):
    source = tmp_path / "v1"
    shutil.copytree(resources.workbook() / "notebooks", source / "notebooks",
                    ignore=shutil.ignore_patterns("[!0]*"))  # fmt: skip
    (source / "docs").mkdir()
    (source / "docs" / "a.md").write_text("v1")
    (source / "docs" / "b.md").write_text("v1")
    dest = tmp_path / "learner"
    copy_workbook(source, dest)
    (dest / "docs" / "b.md").write_text("learner's")
    (source / "docs" / "a.md").write_text("v2")
    (source / "docs" / "b.md").write_text("v2")
    report = copy_workbook(source, dest)
    assert report.updated == ["docs/a.md"] and report.kept == ["docs/b.md"]
    assert (dest / "docs" / "a.md").read_text() == "v2"
    assert (dest / "docs" / "b.md").read_text() == "learner's"
    (dest / RECORD).write_text("not json")  # a broken record protects every file
    assert copy_workbook(source, dest).kept == ["docs/b.md"]


def test_copy_only_from_the_command_line(tmp_path):
    exe = str(SCRIPT) if SCRIPT.exists() else shutil.which("hvmio-lab")
    done = subprocess.run([exe, "lab", str(tmp_path / "wb"), "--copy-only"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "wb" / "notebooks" / "00-start-here.ipynb").is_file()
    assert "new" in done.stdout
    (tmp_path / "file").write_text("")
    bad = subprocess.run([exe, "lab", str(tmp_path / "file"), "--copy-only"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "folder" in bad.stderr


# -- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``hvmio-lab lab DIR --no-browser`` running, with a PATH that lacks this venv's scripts."""
    exe = str(SCRIPT) if SCRIPT.exists() else shutil.which("hvmio-lab")
    root = tmp_path_factory.mktemp("lab") / "workbook"
    port = free_port()
    home = root.parent  # nothing from this machine's ~/.jupyter or ~/.local/share/jupyter
    env = dict(os.environ, PATH="/usr/bin:/bin", JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))  # fmt: skip
    log = root.parent / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([exe, "lab", str(root), "--no-browser", f"--port={port}"],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.3)
            url = re.search(rf"http://(?:localhost|127\.0\.0\.1):{port}/\S+", log.read_text())
        assert url, log.read_text()
        yield url[0], port, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def api(port: int, token: str, path: str, body: dict | None = None, method: str = "GET"):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def test_the_printed_url_is_chapter_00_with_its_token(lab):
    url, _, root = lab
    assert "/lab/tree/notebooks/00-start-here.ipynb?token=" in url
    assert re.search(r"token=[0-9a-f]{16,}", url), url  # a usable link, not "token=..."
    assert (root / "notebooks" / "00-start-here.ipynb").is_file()


def test_no_news_toast(lab):
    url, port, _ = lab
    token = url.split("token=")[1]
    settings = api(port, token, "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    # overrides.json becomes the schema's default (JupyterLab's own default is "none": ask,
    # with a toast); the learner's own setting, if any, still wins.
    assert settings["schema"]["properties"]["fetchNews"]["default"] == "false"


def test_saving_goes_through_the_pre_save_hook(lab):
    """A widget view whose model state is not stored is dropped on save (H6a's hook): the
    reopened notebook shows the static view, never "Error displaying widget"."""
    url, port, root = lab
    token = url.split("token=")[1]
    output = {"output_type": "display_data", "metadata": {}, "data": {
        "text/plain": "a table", "application/vnd.jupyter.widget-view+json": {
            "model_id": "0" * 32, "version_major": 2, "version_minor": 0}}}  # fmt: skip
    cell = {"cell_type": "code", "source": "w", "metadata": {}, "execution_count": 1,
            "outputs": [output]}  # fmt: skip
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}
    api(port, token, "/api/contents/saved.ipynb", {"type": "notebook", "content": notebook},
        method="PUT")  # fmt: skip
    stored = json.loads((root / "saved.ipynb").read_text())
    data = stored["cells"][0]["outputs"][0]["data"]
    assert "".join(data["text/plain"]) == "a table"  # nbformat may store text as lines
    assert "application/vnd.jupyter.widget-view+json" not in data


def test_a_cell_finds_the_hvmio_lab_command(lab):
    url, port, _ = lab
    token = url.split("token=")[1]
    kernel = api(port, token, "/api/kernels", {"name": "python3"}, method="POST")
    try:
        text = asyncio.run(execute(port, token, kernel["id"], "!hvmio-lab run uart_hello"))
    finally:
        api(port, token, f"/api/kernels/{kernel['id']}", method="DELETE")
    assert "hello, hypervisor" in text, text


async def execute(port: int, token: str, kernel_id: str, code: str) -> str:
    """Run ``code`` in a kernel through the server's websocket; return what it printed."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    session = uuid.uuid4().hex
    url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?session_id={session}"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    msg_id = uuid.uuid4().hex
    await ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "session": session, "username": "", "version": "5.3",
                   "msg_type": "execute_request", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))  # fmt: skip
    printed = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.read_message(), timeout=60))
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = message["msg_type"]
        if kind == "stream":
            printed.append(message["content"]["text"])
        elif kind == "error":
            printed.append("\n".join(message["content"]["traceback"]))
        elif kind == "status" and message["content"]["execution_state"] == "idle":
            ws.close()
            return "".join(printed)


def test_install_config_merges_into_the_environments_server_config(tmp_path):
    server = tmp_path / "etc" / "jupyter" / "jupyter_server_config.json"
    server.parent.mkdir(parents=True)
    server.write_text(json.dumps({"ServerApp": {"ip": "0.0.0.0"},
                                  "ContentsManager": {"allow_hidden": True}}))  # fmt: skip
    written = install_config(tmp_path)
    merged = json.loads(server.read_text())
    assert merged["ServerApp"] == {"ip": "0.0.0.0"}  # the admin's settings stay
    assert merged["ContentsManager"] == {
        "allow_hidden": True, "pre_save_hook": "hvmio_lab.widgets.save_hook.pre_save_hook",
    }  # fmt: skip
    overrides = tmp_path / "share/jupyter/lab/settings/overrides.d/hvmio_lab.json"
    assert written == [server, overrides]
    notification = json.loads(overrides.read_text())["@jupyterlab/apputils-extension:notification"]
    assert notification["fetchNews"] == "false"


def test_the_workbooks_own_folder_is_served_in_place(capsys):
    """`make lab` runs `hvmio-lab lab .` in a clone: nothing is copied, no record is left."""
    from hvmio_lab.cli import main

    root = resources.workbook()
    had_record = (root / RECORD).exists()
    assert main(["lab", str(root), "--copy-only"]) == 0
    assert "in place" in capsys.readouterr().out
    assert (root / RECORD).exists() == had_record
