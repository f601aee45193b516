"""The benchmark's model cache, ``.modelfn/bench/``: each model is built and exported once.

Layout (``root`` is ``.modelfn/bench`` by default)::

    store/<variant>/1/            model.onnx + modelcard.json (export_model's store layout), fp32 and -int8
    savedmodel/<model>/           the same Keras model as a TensorFlow SavedModel (the TensorFlow comparison)
    samples/<model>.npy           the benchmark inputs (parity, int8 calibration and every request)
    built/<model>.json            what was built, with which versions; a mismatch re-exports

Building runs in a child process (``python -m modelfn_infra.bench.cache MODEL ROOT``), so TensorFlow never
stays in the benchmark's own process, whose children are what gets measured.

Example:
    >>> paths = ensure("digits", Path(".modelfn/bench"), log=print)      # doctest: +SKIP
    >>> paths.model_dir("digits-int8")                                   # doctest: +SKIP
    PosixPath('.modelfn/bench/store/digits-int8/1')
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .models import BUILD_VERSION, INT8_SUFFIX, MODELS

DEFAULT_ROOT = Path(".modelfn") / "bench"
VERSION = "1"


@dataclass(frozen=True)
class CachePaths:
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store"

    def model_dir(self, variant: str) -> Path:
        return self.store / variant / VERSION

    def saved_model(self, base: str) -> Path:
        return self.root / "savedmodel" / base

    def samples(self, base: str) -> Path:
        return self.root / "samples" / f"{base}.npy"

    def marker(self, base: str) -> Path:
        return self.root / "built" / f"{base}.json"


def fingerprint() -> dict[str, str]:
    """What a cached export depends on besides the builder: the export toolchain's versions."""
    versions = {"build_version": BUILD_VERSION}
    for package in ("tensorflow-cpu", "keras", "tf2onnx", "onnxruntime", "modelfn"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "-"
    return versions


def is_built(paths: CachePaths, base: str) -> bool:
    marker = paths.marker(base)
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text()).get("fingerprint")
    except ValueError:
        return False
    spec = MODELS[base]
    complete = all((paths.model_dir(v) / "modelcard.json").is_file() for v in spec.variants())
    return complete and recorded == fingerprint() and (paths.saved_model(base) / "saved_model.pb").is_file()


def ensure(base: str, root: Path = DEFAULT_ROOT, log=print) -> CachePaths:
    """Build and export ``base`` into the cache unless an up-to-date export is there."""
    paths = CachePaths(Path(root))
    if is_built(paths, base):
        return paths
    log(f"building and exporting {base} into {paths.root} (once; later runs reuse it) ...")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "modelfn_infra.bench.cache", base, str(paths.root)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"exporting benchmark model {base} failed:\n{result.stderr[-3000:]}")
    log(f"  {base} exported in {time.perf_counter() - started:.0f} s")
    return paths


def build(base: str, root: Path) -> None:
    """Build ``base``, write its samples and SavedModel, export fp32 and int8 (the child process's work)."""
    import numpy as np

    from modelfn_export import export_model

    spec, paths = MODELS[base], CachePaths(root)
    for variant in spec.variants():
        shutil.rmtree(paths.store / variant, ignore_errors=True)
    shutil.rmtree(paths.saved_model(base), ignore_errors=True)
    paths.samples(base).parent.mkdir(parents=True, exist_ok=True)
    samples = spec.samples()
    np.save(paths.samples(base), samples)
    model = spec.build(samples)
    model.export(str(paths.saved_model(base)), verbose=False)
    common = dict(version=VERSION, out=str(paths.store), samples=str(paths.samples(base)),
                  rtol=spec.tolerance, atol=spec.tolerance, progress=lambda line: print(line, file=sys.stderr))
    export_model(model, base, description=spec.description, **common)
    card = export_model(model, base + INT8_SUFFIX, quantize=spec.int8_mode, force_quantized=True,
                        description=f"{spec.description}, {spec.int8_mode}", **common)
    paths.marker(base).parent.mkdir(parents=True, exist_ok=True)
    paths.marker(base).write_text(json.dumps({"fingerprint": fingerprint(), "int8": card.quantization}, indent=2))


if __name__ == "__main__":
    build(sys.argv[1], Path(sys.argv[2]))
