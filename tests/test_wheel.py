"""The wheel, installed the way a teacher or a hub does: a fresh venv outside the repo, then
``pip install 'hvmio_lab-….whl[lab]'`` from the package index, nothing from this checkout.

One module fixture builds the wheel from a copy of the work tree (so no stale ``build/``
folder can leak into it); the teacher's venv gets bitstring 4.1, the oldest release the
package claims (a browser build, Pyodide, has only 4.x), while the dev venv runs every other
test on 5.x. A second venv holds the wheel without extras: the core and the CLI alone.
Everything then runs from a folder outside the repo with the venv's own executables. pip's
cache is reused, so a second run needs no downloads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOT_SHIPPED = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "test-artifacts",
    ".pytest_cache", ".hypothesis", ".ruff_cache", ".ipynb_checkpoints",
)  # fmt: skip


def run(argv, *, cwd, env, timeout=600, check=True):
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} → {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """(the wheel, the tree it was built from, the environment every step runs with)."""
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(REPO), "the fresh venvs must live outside the repo"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", JUPYTER_DATA_DIR=str(base / "jupyter-data"),
               JUPYTER_CONFIG_DIR=str(base / "jupyter-config"))  # fmt: skip
    source = base / "source"
    shutil.copytree(REPO, source, ignore=NOT_SHIPPED)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", base / "dist", source],
        cwd=base, env=env)  # fmt: skip
    (built,) = (base / "dist").glob("hvmio_lab-*.whl")
    return built, source, env


def fresh_venv(wheel, name: str, *requirements: str):
    """(bin folder, scratch folder outside the repo, environment, the tree the wheel was built
    from) of a new venv holding ``requirements``."""
    built, source, env = wheel
    base = built.parent.parent / name
    run([sys.executable, "-m", "venv", base], cwd=built.parent, env=env)
    bin_ = base / "bin"
    run([bin_ / "python", "-m", "pip", "install", "-q", *requirements], cwd=built.parent, env=env)
    scratch = base / "elsewhere"
    scratch.mkdir()
    return bin_, scratch, env, source


@pytest.fixture(scope="module")
def venv(wheel):
    """The wheel with its [lab] extra, as a teacher installs it."""
    return fresh_venv(wheel, "venv", f"{wheel[0]}[lab]", "bitstring~=4.1.0", "nbclient")


@pytest.fixture(scope="module")
def core_venv(wheel):
    """The wheel alone: the core and the command-line tool, no Jupyter pieces."""
    return fresh_venv(wheel, "core", str(wheel[0]))


def python(venv, code: str) -> str:
    bin_, scratch, env, _ = venv
    return run([bin_ / "python", "-c", code], cwd=scratch, env=env).stdout


def test_the_package_is_the_installed_copy_with_bitstring_4(venv):
    where = json.loads(python(venv, (
        "import json, bitstring, hvmio_lab; from hvmio_lab import resources;"
        "print(json.dumps([hvmio_lab.__file__, str(resources.data()), bitstring.__version__]))"
    )))  # fmt: skip
    package, data, bitstring = where
    assert "site-packages" in package and not Path(package).is_relative_to(REPO)
    assert Path(data) == Path(package).parent / "data"
    assert bitstring.startswith("4.1.")


def test_every_data_file_and_notebook_ships(venv):
    source = venv[3]  # the tree the wheel was built from (the repo as it was then)
    data = Path(python(venv, "from hvmio_lab import resources; print(resources.data())").strip())
    root = data.parent
    wanted = {p.relative_to(source).as_posix() for p in (source / "data").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    wanted |= {p.relative_to(source).as_posix() for p in (source / "notebooks").glob("*.ipynb")}
    wanted |= {p.relative_to(source).as_posix() for p in (source / "docs").glob("*.md")}
    assert {"data/guests/programs.json", "data/cost_models.json"} <= wanted
    missing = sorted(name for name in wanted if not (root / name).is_file())
    assert not missing, f"not in the wheel: {missing}"
    for name in wanted:
        assert (root / name).read_bytes() == (source / name).read_bytes(), name


def test_every_subpackage_ships(venv):
    source = venv[3]
    subpackages = sorted(p.parent.relative_to(source).as_posix().replace("/", ".")
                         for p in (source / "hvmio_lab").rglob("__init__.py"))  # fmt: skip
    code = f"import importlib; [importlib.import_module(m) for m in {subpackages!r}]; print('ok')"
    assert python(venv, code).strip() == "ok"
    assert "hvmio_lab.widgets" in subpackages and "hvmio_lab.checks" in subpackages


def test_import_loads_none_of_the_heavy_dependencies(venv):
    heavy = python(venv, (
        "import sys, hvmio_lab;"
        "print(sorted(m for m in ('unicorn', 'capstone', 'ipywidgets', 'matplotlib')"
        " if m in sys.modules))"
    ))  # fmt: skip
    assert heavy.strip() == "[]"


def test_decode_from_the_installed_command(venv):
    bin_, scratch, env, _ = venv
    ok = run([bin_ / "hvmio-lab", "decode", "svm", "0x1f480241", "--rip", "0x1000",
              "--next-rip", "0x1001"], cwd=scratch, env=env)  # fmt: skip
    assert "IN 32-bit port 0x1f48" in ok.stdout
    ascii_env = dict(env, PYTHONIOENCODING="ascii")
    plain = run([bin_ / "hvmio-lab", "decode", "svm", "0x1f480241", "--rip", "0x1000",
                 "--next-rip", "0x1001"], cwd=scratch, env=ascii_env)  # fmt: skip
    assert plain.stdout.isascii() and "resume at 0x1001" in plain.stdout
    bad = run([bin_ / "hvmio-lab", "decode", "svm", "0x1f480241", "--rip", "5", "--next-rip",
               "5"], cwd=scratch, env=ascii_env, check=False)  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1


def test_run_every_program_from_the_installed_command(venv):
    bin_, scratch, env, _ = venv
    shipped = json.loads((venv[3] / "data" / "guests" / "programs.json").read_text())
    assert shipped
    for program in shipped:
        done = run([bin_ / "hvmio-lab", "run", program], cwd=scratch, env=env, check=False)
        assert done.returncode == 0, (program, done.stdout, done.stderr)
        assert "exits/s" in done.stdout, program


def test_version_and_lab_help(venv):
    bin_, scratch, env, _ = venv
    version = run([bin_ / "hvmio-lab", "--version"], cwd=scratch, env=env).stdout
    namespace: dict = {}
    init = (venv[3] / "hvmio_lab" / "__init__.py").read_text()
    exec(next(line for line in init.splitlines() if line.startswith("__version__")), namespace)
    assert version.split() == ["hvmio-lab", namespace["__version__"]]
    lab = run([bin_ / "hvmio-lab", "lab", "--help"], cwd=scratch, env=env).stdout
    assert "JupyterLab" in lab and "--force" in lab


def test_chapter_00_runs_from_the_learners_copy(venv):
    bin_, scratch, env, _ = venv
    copy = scratch / "my-workbook"
    run([bin_ / "hvmio-lab", "lab", copy, "--copy-only"], cwd=scratch, env=env)
    notebook = copy / "notebooks" / "00-start-here.ipynb"
    assert notebook.is_file() and (copy / "docs" / "IO_EXITS.md").is_file()
    execute = (
        "import sys, nbformat; from nbclient import NotebookClient;"
        "nb = nbformat.read(sys.argv[1], as_version=4);"
        "NotebookClient(nb, timeout=300, kernel_name='python3',"
        " resources={'metadata': {'path': sys.argv[2]}}).execute();"
        "errors = [o for c in nb.cells for o in c.get('outputs', [])"
        " if o.get('output_type') == 'error'];"
        "print(len(nb.cells), len(errors))"
    )
    done = run([bin_ / "python", "-c", execute, notebook, notebook.parent], cwd=scratch, env=env)
    cells, errors = map(int, done.stdout.split())
    assert cells > 5 and errors == 0, done.stdout


def test_install_config_sets_up_any_jupyter_in_the_environment(venv):
    """What a hub admin (or binder/postBuild) runs: every Jupyter server started in this
    environment then saves through the pre-save hook and shows no news toast."""
    bin_, scratch, env, _ = venv
    run([bin_ / "hvmio-lab", "lab", "--install-config"], cwd=scratch, env=env)
    hook = python(venv, (  # the contents manager a server started here really gets
        "from jupyter_server.serverapp import ServerApp; app = ServerApp.instance();"
        "app.initialize(['--no-browser'], find_extensions=False, new_httpserver=False);"
        "hook = app.contents_manager.pre_save_hook; print(hook.__module__, hook.__name__)"
    ))  # fmt: skip
    assert hook.split() == ["hvmio_lab.widgets.save_hook", "pre_save_hook"]
    overrides = json.loads(python(venv, (  # the overrides JupyterLab's settings API applies
        "import json; from jupyterlab.labapp import LabApp;"
        "from jupyterlab_server.settings_utils import _get_overrides;"
        "print(json.dumps(_get_overrides(LabApp().app_settings_dir)[0]))"
    )))  # fmt: skip
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


def test_the_core_alone_decodes_and_runs_and_lab_says_what_to_install(core_venv):
    bin_, scratch, env, _ = core_venv
    installed = run([bin_ / "python", "-m", "pip", "list", "--format=freeze"], cwd=scratch,
                    env=env).stdout.lower()  # fmt: skip
    for absent in ("ipywidgets", "matplotlib", "jupyterlab"):
        assert f"\n{absent}==" not in f"\n{installed}", absent
    decode = run([bin_ / "hvmio-lab", "decode", "vmx", "0x1f480008", "--length", "1"],
                 cwd=scratch, env=env)  # fmt: skip
    assert "IN 8-bit port 0x1f48" in decode.stdout
    guest = run([bin_ / "hvmio-lab", "run", "uart_hello"], cwd=scratch, env=env)
    assert "hello, hypervisor" in guest.stdout
    lab = run([bin_ / "hvmio-lab", "lab", scratch / "wb", "--no-browser"], cwd=scratch, env=env,
              check=False)  # fmt: skip
    assert lab.returncode == 2 and len(lab.stderr.splitlines()) == 1
    assert "pip install 'hvmio_lab[lab]'" in lab.stderr
