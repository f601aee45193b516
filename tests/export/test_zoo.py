"""The model zoo matrix: every kind of model in :mod:`tests.export.zoo` exports, passes an
*informative* parity gate, and is served through ``InferenceService.handle`` with outputs that match
TensorFlow.

Set ``MODELFN_ZOO_REPORT=zoo.json`` to collect per-model figures (export time, artifact size, parity)
and render the table in docs/export.md with ``python -m tests.export.zoo_table zoo.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfn_runtime.http import Headers, HttpRequest
from modelfn_runtime.service import InferenceService
from modelfn_runtime.session import ModelSession

from .export_checks import check_version_dir
from .served import serve_isolated
from .zoo import SLOW, ZOO

DEFAULT_MAX_ABS_DIFF = 1e-4
TOLERANCES = {"resnet50": 1e-3}
"""Per-model parity tolerance (rtol and atol) where float32 noise exceeds the default; see docs/export.md."""


class Meter:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def record(self, usage: Any) -> None:
        self.records.append(usage)


def _post(path: str, payload: dict[str, Any]) -> HttpRequest:
    return HttpRequest("POST", path, Headers({"Content-Type": "application/json"}), body=json.dumps(payload).encode())


def _oip_input(name: str, array: np.ndarray) -> dict[str, Any]:
    from modelfn_runtime.tensors import datatype_of

    data = [str(v) for v in array.reshape(-1)] if array.dtype.kind in "OU" else array.reshape(-1).tolist()
    return {"name": name, "shape": list(array.shape), "datatype": datatype_of(array), "data": data}


def _record(name: str, figures: dict[str, Any]) -> None:
    report = os.environ.get("MODELFN_ZOO_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"model": name, **figures}) + "\n")


def _serve(directory: Path, name: str, requests: list[tuple[str, str, Any]], *, isolated: bool) -> list[tuple[int, str]]:
    """``(status, body)`` of each request through ``InferenceService.handle``: in this process, or, for a model with
    custom ops, in one without TensorFlow (as deployed: TensorFlow's RE2 breaks the extensions' regex ops)."""
    if isolated:
        answers = serve_isolated(directory, name, requests)
        assert not any(a["tensorflow_imported"] for a in answers)
        return [(a["status"], a["body"]) for a in answers]
    service = InferenceService(ModelSession.load(directory, preference="cpu"), served_models=[name], meter=Meter())
    responses = [service.handle(_post(path, body)) for _, path, body in requests]
    return [(r.status, r.body.decode() if isinstance(r.body, bytes) else r.body) for r in responses]


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in ZOO]
)
def test_zoo_model_exports_and_serves(name: str, tmp_path: Path) -> None:
    from modelfn_export import export_model
    from modelfn_export.parity import generate_samples, load_samples
    from modelfn_export.sources import load_source

    entry = ZOO[name](tmp_path)
    options = dict(entry.options)
    tolerance = TOLERANCES.get(name, options.get("atol", DEFAULT_MAX_ABS_DIFF))
    if name in TOLERANCES:
        options.update(atol=tolerance, rtol=tolerance)
    store = tmp_path / "store"

    started = time.perf_counter()
    card = export_model(entry.source, name, out=store, **options)
    export_seconds = time.perf_counter() - started

    directory = store / name / "1"
    assert check_version_dir(directory) == card
    parity = card.parity
    assert parity["passed"] is True and parity["informative"] is True and parity["uninformative_allowed"] is False
    for output in parity["per_output"].values():
        assert output["informative"] is True and output["spread"] > 0
        # within `tolerance` of the output's range on the samples (logits of EfficientNet span ~45)
        assert output["max_abs_diff"] <= tolerance * max(1.0, output["spread"])
    assert not any(s.name.startswith(("args_", "output_0")) or ":" in s.name for s in card.inputs + card.outputs)

    # served through the runtime's service: OIP JSON in, outputs equal to TensorFlow's
    loaded = load_source(entry.source)
    if "samples" in options:
        batch = load_samples(options["samples"], loaded.inputs)[0]
    else:
        batch = generate_samples(loaded.inputs, batch_sizes=(4,), seed=7)[0]
    reference = loaded.run(batch)
    requests = [("POST", f"/v2/models/{name}/infer", {"inputs": [_oip_input(key, value) for key, value in batch.items()]})]
    if entry.strings:  # TF Serving with binary strings: {"b64": ...} elements reach the model as text
        import base64

        (key, column), = batch.items()
        def b64(value: Any) -> dict[str, str]:
            return {"b64": base64.b64encode(str(value).encode()).decode()}

        instances = [b64(row) if column.ndim == 1 else [b64(v) for v in row] for row in column.tolist()]
        requests.append(("POST", f"/v1/models/{name}:predict", {"instances": instances}))
    answers = _serve(directory, name, requests, isolated=card.custom_ops is not None)
    assert answers[0][0] == 200, answers[0][1]
    served = {o["name"]: o for o in json.loads(answers[0][1])["outputs"]}
    assert set(served) == set(reference)
    for key, expected in reference.items():
        got = np.asarray(served[key]["data"], dtype=np.float64).reshape(served[key]["shape"])
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected.astype(np.float64), rtol=tolerance * 10, atol=tolerance)
    if entry.strings:
        assert answers[1][0] == 200, answers[1][1]
        predictions = json.loads(answers[1][1])["predictions"]
        for key, expected in reference.items():
            got = predictions if len(reference) == 1 else [row[key] for row in predictions]
            np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected, rtol=tolerance * 10, atol=tolerance)

    shutil.rmtree(store)  # up to 90 MB per model: do not keep it in pytest's retained temp dirs
    _record(
        name,
        {
            "kind": entry.kind,
            "export_s": round(export_seconds, 1),
            "bytes": card.artifact.bytes,
            "inputs": [f"{s.name} {s.datatype} {s.shape}" for s in card.inputs],
            "outputs": [f"{s.name} {s.datatype} {s.shape}" for s in card.outputs],
            "max_abs_diff": parity["max_abs_diff"],
            "max_rel_diff": parity["max_rel_diff"],
            "top1_agreement": parity["top1_agreement"],
            "spread": min(o["spread"] for o in parity["per_output"].values()),
            "tolerance": tolerance,
            "samples": parity["samples"],
        },
    )


@pytest.mark.parametrize(
    ("name", "mode"),
    [("transformer-encoder", "int8"), ("bilstm-masking", "int8"), pytest.param("mobilenet-v2", "int8-static", marks=pytest.mark.slow)],
)
def test_zoo_model_quantizes(name: str, mode: str, tmp_path: Path) -> None:
    """int8 figures for zoo models: agreement with fp32 on 128 informative rows, size, latency.

    Random weights give no accuracy promise, so a model below the threshold is kept with
    ``force_quantized`` and the card says so; the figures are what is checked and recorded."""
    import onnx

    from modelfn_export import export_model
    from modelfn_export.parity import generate_samples
    from modelfn_export.sources import load_source

    entry = ZOO[name](tmp_path)
    loaded = load_source(entry.source)
    samples = tmp_path / "samples.npz"
    np.savez(samples, **generate_samples(loaded.inputs, batch_sizes=(128,), seed=3)[0])
    card = export_model(entry.source, name, out=tmp_path / "store", quantize=mode, samples=samples, force_quantized=True)
    check_version_dir(tmp_path / "store" / name / "1")
    quant = card.quantization
    assert quant["mode"] == mode and quant["informative"] is True and card.parity["informative"] is True
    assert quant["bytes"] == card.artifact.bytes
    if name != "bilstm-masking":  # 6k parameters: the quantization nodes outweigh the int8 savings
        assert quant["bytes"] < quant["fp32_bytes"]
    assert quant["forced"] is (quant["agreement"] < quant["threshold"])
    assert set(quant["latency_ms"]) == {"fp32", "int8"}
    slower = any(ratio < 1 for ratio in quant["speedup_vs_fp32"].values())
    assert any("int8 is slower than fp32" in w for w in quant["warnings"]) is slower
    assert any("--force-quantized" in w for w in quant["warnings"]) is quant["forced"]
    ops = {node.op_type for node in onnx.load(tmp_path / "store" / name / "1" / "model.onnx").graph.node}
    assert ({"QuantizeLinear", "DequantizeLinear"} <= ops) if mode == "int8-static" else ("DynamicQuantizeLinear" in ops)
    _record(
        f"{name} ({mode})",
        {
            "quantization": mode,
            "agreement": quant["agreement"],
            "top1_agreement": quant["top1_agreement_with_fp32"],
            "size_ratio": quant["size_ratio"],
            "latency_ms": quant["latency_ms"],
            "speedup": quant["speedup_vs_fp32"],
            "int8_instructions": quant["cpu"]["int8_dot_product"],
            "forced": quant["forced"],
        },
    )
