"""``hvmio-lab lab [DIR]``: the workbook in JupyterLab, from a copy the learner owns.

The installed package holds the workbook read-only (``notebooks/``, ``docs/`` and every file a
notebook links to). This command copies it into DIR and starts JupyterLab there on chapter 00.
A learner's edits are never overwritten: DIR keeps a record of what was copied
(``.hvmio-lab-copy.json``), and a file that no longer matches that record is the learner's and
stays as it is unless ``--force`` is given. Run again after an upgrade, it brings in new and
updated chapters the learner has not touched.

JupyterLab starts with the workbook's settings from ``data/jupyter/``: the server's
``ContentsManager.pre_save_hook`` (saving never leaves a widget that cannot be drawn) and no
news toast. The kernel inherits a PATH that starts with this environment's scripts folder, so
``!hvmio-lab run uart_hello`` works in a cell. ``--install-config`` writes the same settings
into the environment instead, for servers this command does not start (a JupyterHub's
single-user servers, Binder).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from .. import resources
from ..errors import HvmioError

START = "notebooks/00-start-here.ipynb"
RECORD = ".hvmio-lab-copy.json"
# A link target in a notebook's Markdown: [text](target) or src="target" / href="target".
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)|(?:src|href)\s*=\s*[\"']([^\"']+)")


def workbook_files(root: Path) -> list[str]:
    """What a learner's copy holds, as paths relative to ``root``: every notebook, the docs,
    and every local file a notebook's Markdown links to (a guest's .asm source, say)."""
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    found = {p.relative_to(root).as_posix() for p in notebooks}
    found |= {p.relative_to(root).as_posix() for p in (root / "docs").rglob("*") if p.is_file()}
    for notebook in notebooks:
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            source = "".join(cell["source"])
            for match in _LINK.finditer(source):
                target = (match[1] or match[2]).split("#")[0].split("?")[0]
                if not target or ":" in target:  # a URL, mailto: or an in-page anchor
                    continue
                path = (notebook.parent / target).resolve()
                if path.is_file() and path.is_relative_to(root.resolve()):
                    found.add(path.relative_to(root.resolve()).as_posix())
    return sorted(found)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class CopyReport:
    """What a copy did, file by file (paths relative to the destination)."""

    copied: list[str] = field(default_factory=list)  # new in DIR
    updated: list[str] = field(default_factory=list)  # a newer version over an untouched copy
    kept: list[str] = field(default_factory=list)  # the learner changed it: left alone
    replaced: list[str] = field(default_factory=list)  # the learner changed it: --force

    def lines(self) -> list[str]:
        out = [f"{len(self.copied)} new, {len(self.updated)} updated"]
        out += [f"kept your edited {name} (--force replaces it)" for name in self.kept]
        out += [f"replaced your edited {name} (--force)" for name in self.replaced]
        return out


def copy_workbook(source: Path, dest: Path, *, force: bool = False) -> CopyReport:
    """Copy the workbook from ``source`` into ``dest``, never over a learner's edit unless
    ``force``. The record of what was copied decides which files are the learner's."""
    record_path = dest / RECORD
    record: dict[str, str] = {}
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}  # an unreadable record protects everything: no file counts as ours
    report = CopyReport()
    for name in workbook_files(source):
        origin, target = source / name, dest / name
        new = _digest(origin)
        if target.is_file():
            have = _digest(target)
            if have == new:
                record[name] = new
                continue
            if have != record.get(name):  # not what we last put there: the learner's work
                if not force:
                    report.kept.append(name)
                    continue
                report.replaced.append(name)
            else:
                report.updated.append(name)
        else:
            report.copied.append(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(origin, target)
        record[name] = new
    dest.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return report


def jupyter_config() -> Path:
    """The folder of the workbook's Jupyter settings (server config and JupyterLab overrides)."""
    return Path(str(resources.data("jupyter")))


def lab_command(
    root: Path, *, browser: bool, port: int | None = None, ip: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that start JupyterLab on chapter 00 of ``root``."""
    config = jupyter_config()
    argv = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={root}",
        f"--config={config / 'jupyter_server_config.json'}",
        f"--LabApp.app_settings_dir={config}",  # overrides.json: no news toast
        f"--LabApp.default_url=/lab/tree/{START}",  # opened, and printed with its token
    ]  # fmt: skip
    if not browser:
        argv.append("--no-browser")
    if port is not None:
        argv.append(f"--ServerApp.port={port}")
    if ip is not None:
        argv.append(f"--ServerApp.ip={ip}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI machines often run as root
    env = dict(os.environ)
    scripts = sysconfig.get_path("scripts")
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])  # the kernel finds hvmio-lab
    return argv, env


def install_config(prefix: Path) -> list[Path]:
    """Write the workbook's Jupyter settings where any Jupyter in ``prefix`` reads them.

    The server's settings go into the environment's ``jupyter_server_config.json``, merged
    into what is there (a ``jupyter_server_config.d`` file would only ever enable
    extensions); JupyterLab's overrides get a file of their own in ``overrides.d``."""
    config = jupyter_config()
    server = prefix / "etc" / "jupyter" / "jupyter_server_config.json"
    settings = json.loads(server.read_text(encoding="utf-8")) if server.is_file() else {}
    for section, values in json.loads((config / "jupyter_server_config.json").read_text()).items():
        settings.setdefault(section, {}).update(values)
    server.parent.mkdir(parents=True, exist_ok=True)
    server.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    overrides = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / "hvmio_lab.json"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config / "overrides.json", overrides)
    return [server, overrides]


def _lab(args: argparse.Namespace) -> int:
    if args.install_config:
        for path in install_config(Path(sys.prefix)):
            print(f"wrote {path}")
        return 0
    if not args.copy_only and importlib.util.find_spec("jupyterlab") is None:
        raise HvmioError("JupyterLab is not installed here: pip install 'hvmio_lab[lab]'")
    source = resources.workbook()
    dest = Path(args.dir).expanduser().resolve()
    if dest == source.resolve():
        print(f"serving the workbook in place: {dest}")
    else:
        if dest.exists() and not dest.is_dir():
            raise HvmioError(f"DIR must be a folder: {dest} is a file")
        report = copy_workbook(source, dest, force=args.force)
        print(f"workbook in {dest}: " + "\n  ".join(report.lines()))
    if args.copy_only:
        return 0
    argv, env = lab_command(dest, browser=not args.no_browser, port=args.port, ip=args.ip)
    print(f"starting JupyterLab on {START}: open the URL it prints below")
    sys.stdout.flush()
    if os.name == "posix":
        os.execve(argv[0], argv, env)  # Jupyter owns the terminal (its Ctrl-C prompt)
    return subprocess.call(argv, env=env)


def add(commands: argparse._SubParsersAction) -> None:
    lab = commands.add_parser(
        "lab", help="copy the workbook into DIR and open it in JupyterLab",
        description="Copy the workbook (notebooks, docs, the files they link to) into DIR and "
        "start JupyterLab there on chapter 00. Files you have edited are kept, and named; "
        "--force replaces them.",
    )  # fmt: skip
    lab.add_argument(
        "dir", nargs="?", default="hvmio-lab-workbook",
        help="where the workbook goes (./hvmio-lab-workbook); the workbook's own folder "
        "(e.g. `.` in a clone) is served in place",
    )  # fmt: skip
    lab.add_argument("--force", action="store_true", help="replace files you have edited")
    lab.add_argument("--copy-only", action="store_true", help="copy, do not start JupyterLab")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("--port", type=int, default=None, help="the server's port (8888)")
    lab.add_argument("--ip", default=None,
                     help="the address to listen on (localhost; 0.0.0.0 in a container)")
    lab.add_argument(
        "--install-config", action="store_true",
        help="write the workbook's Jupyter settings into this environment instead (for "
        "servers started by a hub or Binder), then exit",
    )  # fmt: skip
    lab.set_defaults(handler=_lab)
