"""The model: one ONNX Runtime session and its card, loaded once, run per request.

Load and predict stay apart: ``ModelSession.load`` and ``warm_up`` are init work, ``run`` is the only thing a
request does with the model. ``run`` validates the named tensors against the card (``validation``,
the rules the protocol codecs apply too), so a tensor built any other way is checked just the same.

Example:
    >>> model = ModelSession.load("models/digits/1")            # doctest: +SKIP
    >>> model.run({"pixels": np.zeros((1, 64), np.float32)})   # doctest: +SKIP
    {'probs': array([[...]], dtype=float32)}

On CUDA, ``run`` binds a batch of at least ``IO_BINDING_MIN_BATCH`` rows with ONNX Runtime's I/O binding (the
input copied to the device inside the run, the outputs copied back once) instead of ``session.run``; ``warm_up``
runs the model once per batch size of ``WARM_UP_BATCHES`` at init, so cuDNN's algorithm search and the arena's
first allocations happen before the first request. ``fallback`` says why a GPU image serves on the CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import cuda, custom_ops, providers  # noqa: F401 - cuda: onnxruntime-gpu's CUDA libraries load at import
from .artifacts import ModelLoadError
from .digest import sha256_file
from .modelcard import ARTIFACT_FILE, CARD_FILE, ModelCard
from .observability import logger
from .tensors import ORT_TYPES, datatype_of, from_ort, numpy_dtype, to_ort
from .validation import check_inputs, check_outputs

IO_BINDING_MIN_BATCH = 64
"""The smallest batch ``run`` binds on CUDA: on the H200 (issue 17, onnxruntime-gpu 1.31.1) I/O binding took ResNet50
b64 from 16.3 to 9.6 ms. b64 is the only batch that was measured both ways; below it ``session.run`` stays (the
b1/b8 figures of docs/gpu.md were taken with it). ``benchmarks/gpu_check.py`` measures handler vs bare I/O binding
at b1/b8/b64 and is where a lower threshold must be shown first."""
WARM_UP_BATCHES = {"CPUExecutionProvider": (1,), "CUDAExecutionProvider": (1, 8, IO_BINDING_MIN_BATCH)}
"""Batch sizes warmed at init, per provider: on CUDA each new shape pays cuDNN's algorithm search once (the batches
docs/gpu.md measures); other providers warm b1."""


@dataclass
class ModelSession:
    card: ModelCard
    session: ort.InferenceSession
    provider: str
    threads: int
    source: Path | None = None
    """The directory the model was loaded from (SnapStart's after-restore hook reopens it with other threads)."""
    gpu_mem_limit: int | None = None
    """This process's cap on the CUDA arena in bytes (``providers.gpu_mem_limit_bytes``); None: uncapped or no CUDA."""
    io_binding_threshold: int = IO_BINDING_MIN_BATCH
    warm_up_ms: float | None = None
    """What ``warm_up`` took at init (None: not warmed)."""
    fallback: str | None = None
    """Why this GPU image serves on the CPU (``cuda.REPORT``'s verdict); None where it serves as built."""

    @classmethod
    def load(cls, model_dir: str | Path, *, preference: str = "auto", threads: int | None = None,
             sha256: str | None = None) -> "ModelSession":
        """Verify ``model.onnx`` against ``modelcard.json`` and open one session on the best working provider.

        ``sha256`` is the artifact's digest when the caller has just computed it (``artifacts`` hashes a model it
        downloads from S3): it is compared with the card instead of hashing the file a second time.
        """
        model_dir = Path(model_dir)
        card_path, model_path = model_dir / CARD_FILE, model_dir / ARTIFACT_FILE
        for path in (card_path, model_path):
            if not path.is_file():
                raise ModelLoadError(f"{path} is missing; export the model with `modelfn export` into that directory")
        try:
            card = ModelCard.read(card_path)
        except (ValueError, KeyError, TypeError) as error:
            raise ModelLoadError(
                f"{card_path} is not a valid model card ({type(error).__name__}: {str(error)[:120]}); "
                "re-export the model with `modelfn export` or push it again"
            ) from None
        digest = sha256 or sha256_file(model_path)
        if digest != card.artifact.sha256:
            raise ModelLoadError(
                f"{model_path} has sha256 {digest} but its card records {card.artifact.sha256}; re-export or re-push the model"
            )
        options = providers.session_options(threads)
        custom_ops.register(options, card)  # the library its card names (raw-text models: onnxruntime-extensions)
        names = providers.requested_providers(preference)
        session_options = providers.provider_options(names)
        session = ort.InferenceSession(str(model_path), options, providers=names, provider_options=session_options)
        provider = session.get_providers()[0]
        cuda_options = dict(zip(names, session_options)).get(provider, {})
        limit = int(cuda_options["gpu_mem_limit"]) if "gpu_mem_limit" in cuda_options else None
        fallback = cuda.REPORT.get("verdict") if cuda.REPORT["device"] == "GPU" and provider == providers.CPU_PROVIDER else None
        model = cls(card, session, provider, options.intra_op_num_threads, model_dir, gpu_mem_limit=limit, fallback=fallback)
        model._check_signature()
        return model

    def run(self, inputs: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the model on named tensors; BadRequest for anything the card does not accept."""
        check_inputs(self.card.inputs, {name: (datatype_of(array), array.shape) for name, array in inputs.items()})
        names = output_names or [spec.name for spec in self.card.outputs]
        check_outputs(self.card.outputs, names)
        feeds = {name: to_ort(name, array) for name, array in inputs.items()}
        values = self._run_bound(names, feeds) if self._binds(inputs) else self.session.run(names, feeds)
        return {name: from_ort(value) for name, value in zip(names, values)}

    def warm_up(self, batch_sizes: tuple[int, ...] | None = None) -> float:
        """Run the model on zeros once per batch size (default: ``WARM_UP_BATCHES`` of its provider); milliseconds.

        A model that will not run on zeros is logged and left cold: it still serves what its callers send."""
        sizes = batch_sizes or WARM_UP_BATCHES.get(self.provider, (1,))
        started = time.perf_counter()
        try:
            for size in sizes:
                self.run({spec.name: _zeros(spec.shape, spec.datatype, size) for spec in self.card.inputs})
        except Exception as error:  # noqa: BLE001 - a warm-up is an optimisation, never a reason not to serve
            logger.warning("warm-up failed; the first requests pay kernel selection", error=str(error)[:300],
                           batch_sizes=list(sizes))
            return 0.0
        self.warm_up_ms = round((time.perf_counter() - started) * 1000, 1)
        return self.warm_up_ms

    def _binds(self, inputs: dict[str, np.ndarray]) -> bool:
        """I/O binding pays on CUDA for batches of at least ``io_binding_threshold`` numeric rows."""
        if self.provider != "CUDAExecutionProvider" or not inputs:
            return False
        if any(spec.datatype == "BYTES" for spec in [*self.card.inputs, *self.card.outputs]):
            return False
        first = next(iter(inputs.values()))
        return first.ndim > 0 and first.shape[0] >= self.io_binding_threshold

    def _run_bound(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The inputs bound from host memory (copied to the device in the run), the outputs copied back once."""
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name in names:
            binding.bind_output(name)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def _check_signature(self) -> None:
        actual = {arg.name: ORT_TYPES.get(arg.type) for arg in self.session.get_inputs()}
        actual.update({arg.name: ORT_TYPES.get(arg.type) for arg in self.session.get_outputs()})
        for spec in [*self.card.inputs, *self.card.outputs]:
            if actual.get(spec.name) != spec.datatype:
                raise ModelLoadError(
                    f"model card and model.onnx disagree on {spec.name!r} ({spec.datatype} vs {actual.get(spec.name)}); "
                    "re-export the model so the card is written from the artifact"
                )


def _zeros(shape: list[int], datatype: str, batch: int) -> np.ndarray:
    """A warm-up tensor: the leading dynamic dimension is ``batch``, other dynamic ones 1; strings are empty."""
    dims = [(batch if index == 0 else 1) if dim < 0 else dim for index, dim in enumerate(shape)]
    if datatype == "BYTES":
        return np.full(dims, "", dtype=object)
    return np.zeros(dims, numpy_dtype(datatype))
