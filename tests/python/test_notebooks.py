"""Executes every notebook in python/notebooks/ headless (nbclient, the python3 kernel of
Debian's ipykernel) and fails on any error. Notebooks are committed without outputs.

ctest sets IVMC_PYTHONPATH to the build's python directory; without it the release build's
(build/release/python) is used:
    /usr/bin/python3 -m pytest -q tests/python/test_notebooks.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "python" / "notebooks").glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def kernel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel inherits this environment: the build's ivmc first on its path, matplotlib
    without a display, and no figure files written (IVMC_FIGURE_DIR unset)."""
    pythonpath = os.environ.get("IVMC_PYTHONPATH") or str(ROOT / "build" / "release" / "python")
    assert (Path(pythonpath) / "ivmc" / "__init__.py").is_file(), (
        f"no ivmc package in {pythonpath}: build it (cmake --build build/release --target _ivmc)"
    )
    monkeypatch.setenv("PYTHONPATH", pythonpath)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # ipykernel's debugger's warning
    monkeypatch.delenv("IVMC_FIGURE_DIR", raising=False)


def execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Runs every cell in a fresh kernel; raises CellExecutionError on the first error."""
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    return client.execute()


def test_there_are_notebooks() -> None:
    """The notebooks issue 5 asks for exist."""
    names = {p.name for p in NOTEBOOKS}
    assert {"getting_started.ipynb", "update_period_study.ipynb"} <= names, names


def test_kernel_is_this_python(tmp_path: Path) -> None:
    """The python3 kernel runs this interpreter (Debian's /usr/bin/python3), which sees ivmc."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(
        "import sys, ivmc\nprint(sys.executable)\nprint(ivmc.__file__)"))
    out = execute(nb, tmp_path).cells[0]["outputs"]
    text = "".join(o.get("text", "") for o in out if o.get("output_type") == "stream")
    executable, module = text.split()
    assert os.path.realpath(executable) == os.path.realpath(sys.executable), text
    assert module.startswith(os.environ["PYTHONPATH"]), text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path: Path) -> None:
    """Notebooks are committed cleared: no outputs, no execution counts."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == KERNEL
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (path.name, cell.id)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    """Every cell runs without an error from a copy outside the repository (as a user who
    copied it would run it): the notebooks find their scenarios through ivmc, not the working
    directory."""
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    assert not any((p / "scenarios").is_dir() for p in [tmp_path, *tmp_path.parents])
    nb = nbformat.read(copy, as_version=4)
    executed = execute(nb, tmp_path)
    for cell in executed.cells:
        if cell.cell_type == "code":
            for output in cell.outputs:
                assert output.output_type != "error", (path.name, cell.id, output.get("ename"))
