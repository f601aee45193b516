"""ONNX Runtime with a custom-op library, in a process that never imports TensorFlow.

TensorFlow and onnxruntime-extensions both carry RE2 (hundreds of clashing symbols): once TensorFlow's RE2
has run in a process, the extensions' ``StringRegexReplace`` silently returns its input. A deployed
function never imports TensorFlow, but the export does (it runs the TensorFlow reference), so a model with
custom ops is run for parity and agreement in a child process: ``python -m modelfn_export.isolated``, fed
``(model path, library, batches)`` pickled on stdin, answering the outputs pickled on stdout. A child
process, not ``multiprocessing`` with "spawn", which re-imports the caller's ``__main__`` (a user's script).

Example:
    >>> outputs = run_isolated("model.onnx", batches, "onnxruntime-extensions")   # doctest: +SKIP
    >>> sorted(outputs[0])                                                       # doctest: +SKIP
    ['logits', 'tokens']
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Batch = dict[str, Any]

TIMEOUT_S = 600


def _pythonpath() -> str:
    """The child's PYTHONPATH: where this process found modelfn_export and modelfn_runtime, then the inherited one."""
    import modelfn_runtime

    roots = [str(Path(path).resolve().parents[1]) for path in (__file__, modelfn_runtime.__file__)]
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys([*roots, *inherited]))


def run_isolated(path: str | os.PathLike[str], batches: Sequence[Batch], library: str) -> list[Batch]:
    """Run the model at ``path`` (with ``library`` registered) on each batch in a TensorFlow-free child process.

    Raises:
        RuntimeError: the child failed; the message is its last error line.
    """
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    done = subprocess.run(
        [sys.executable, "-m", "modelfn_export.isolated"],
        input=pickle.dumps((os.fspath(path), library, list(batches))),
        capture_output=True, check=False, env=env, timeout=TIMEOUT_S,
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"]
        raise RuntimeError(lines[-1][:400])
    return pickle.loads(done.stdout)


def _serve(path: str, library: str, batches: list[Batch]) -> list[Batch]:
    import onnxruntime as ort

    from modelfn_runtime.custom_ops import library_path

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.register_custom_ops_library(library_path(library))
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = [dict(zip(names, session.run(names, batch))) for batch in batches]
    if "tensorflow" in sys.modules:  # the point of this process
        raise RuntimeError("TensorFlow was imported in the isolated ONNX Runtime process")
    return results


if __name__ == "__main__":
    model_path, library_name, feeds = pickle.load(sys.stdin.buffer)
    sys.stdout.buffer.write(pickle.dumps(_serve(model_path, library_name, feeds)))
