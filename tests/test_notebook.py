"""examples/quickstart.ipynb: stored without outputs, and it runs top to bottom on a CPU in a fresh kernel of this
interpreter, shows its pictures, writes only into its temporary folder, and its ONNX Runtime samples match PyTorch's."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the `test` extra (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the `test` extra (nbclient)")
pytest.importorskip("ipykernel", reason="the notebook test needs the `test` extra (ipykernel)")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (installed with nbclient)
from jupyter_client.manager import KernelManager  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
KERNEL = "translate-test"


def kernel_manager(kernels: Path) -> KernelManager:
    """A kernel manager whose only kernel runs ipykernel on this test's interpreter (not whatever `python3` a
    Jupyter installation elsewhere on the machine names)."""
    spec = kernels / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def text_of(cell: dict) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def test_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "clear the notebook's outputs"


def test_quickstart_runs(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(tmp),  # tempfile.mkdtemp in the notebook lands here, so the test sees what it wrote
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures as image/png outputs
        # One intra-op thread, as conftest's one_torch_thread: on a busy 2-core machine two OpenMP threads waiting
        # for each other made the tiny training 5-20x slower (40 steps: 15-48 s against about 2 s).
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),  # this checkout
    }
    examples_before = sorted(p.name for p in NOTEBOOK.parent.iterdir())
    client = nbclient.NotebookClient(
        nb, km=kernel_manager(tmp_path / "kernels"), timeout=300, resources={"metadata": {"path": str(cwd)}}
    )
    start = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    seconds = time.perf_counter() - start
    print(f"quickstart.ipynb ran in {seconds:.1f} s")

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors
    with_images = [cell for cell in code if any("image/png" in out.get("data", {}) for out in cell.outputs)]
    # ming2kai's pairs, the cgan grid, two InfoGAN rows, the losses, the PyTorch and the ONNX Runtime samples.
    assert len(with_images) >= 6, f"only {len(with_images)} cells showed a picture"

    printed = "\n".join(text_of(cell) for cell in code)
    found = re.search(r"max abs difference, ONNX Runtime vs PyTorch: (\d+)", printed)
    assert found, printed
    assert int(found.group(1)) <= 2, f"ONNX Runtime and PyTorch samples differ by {found.group(1)} of 255"
    assert "'step': 40," in printed, "the training metrics should reach step 40"

    # It wrote only into its temporary folder, under TMPDIR, and removed it at the end; nothing in the repository.
    work = re.search(r"writes into (\S+)", printed)
    assert work and Path(work.group(1)).parent == tmp, printed
    assert not list(tmp.glob("translate-quickstart-*")), sorted(tmp.iterdir())  # (libraries keep caches there)
    assert not any(cwd.iterdir()), sorted(cwd.iterdir())
    assert sorted(p.name for p in NOTEBOOK.parent.iterdir()) == examples_before
