"""int8 quantization (dynamic, and static QDQ): agreement with fp32 is measured, recorded, and enforced."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from modelfn_export import ExportError, export_model

from . import models as export_models
from .export_checks import check_version_dir, store_is_clean


def test_digits_mlp_quantized(digits_quantized_export: tuple[Any, Path], digits_export: tuple[Any, Path]) -> None:
    card, out = digits_quantized_export
    check_version_dir(out / "digits" / "1")
    quant = card.quantization
    assert quant["mode"] == "int8" and quant["method"] == "dynamic" and quant["weight_type"] == "QInt8"
    assert quant["informative"] is True and card.parity["informative"] is True
    assert set(quant["latency_ms"]) == {"fp32", "int8"}
    assert all(v > 0 for figures in quant["latency_ms"].values() for v in figures.values())
    # the measured speedup, the CPU it was measured on, and a warning exactly when int8 is slower
    fp32_ms, int8_ms = quant["latency_ms"]["fp32"], quant["latency_ms"]["int8"]
    assert quant["speedup_vs_fp32"] == {k.removesuffix("_ms"): round(fp32_ms[k] / int8_ms[k], 3) for k in fp32_ms}
    assert set(quant["cpu"]) == {"model", "machine", "int8_dot_product"}
    slower = any(ratio < 1 for ratio in quant["speedup_vs_fp32"].values())
    assert any("int8 is slower than fp32" in w for w in quant["warnings"]) is slower
    assert quant["top1_agreement_with_fp32"] >= quant["threshold"] == 0.98
    assert 0 < quant["max_abs_diff_vs_fp32"] < 0.2
    assert quant["forced"] is False
    assert quant["samples"] == 450  # x_test
    assert quant["bytes"] == card.artifact.bytes < quant["fp32_bytes"]
    # the parity gate ran on the fp32 model, on the user's samples
    assert card.parity["samples"] == "x_test.npy" and card.parity["max_abs_diff"] <= 1e-4
    assert card.parity["measured_on"] == "fp32 model before quantization"
    # same signature as the fp32 export
    fp32_card, _ = digits_export
    assert card.inputs == fp32_card.inputs and card.outputs == fp32_card.outputs


def test_quantized_below_threshold_is_refused(tmp_path: Path) -> None:
    # by construction int8 weights tie both logits: top-1 agreement with fp32 is 0
    model = export_models.build_quantization_tie()
    with pytest.raises(ExportError) as info:
        export_model(model, "tie", out=tmp_path / "store", quantize="int8")
    message = str(info.value)
    assert re.search(r"quantized model agrees with fp32 only 0\.[0-8]\d\d on output 'logits' \(threshold 0\.98\)", message)
    assert "--force-quantized" in message and "\n" not in message
    assert info.value.exit_code == 1
    assert not (tmp_path / "store").exists()


def test_forced_quantization_is_written_and_recorded(tmp_path: Path) -> None:
    model = export_models.build_quantization_tie()
    card = export_model(model, "tie", out=tmp_path, quantize="dynamic", force_quantized=True)
    check_version_dir(tmp_path / "tie" / "1")
    assert card.quantization["forced"] is True
    assert card.quantization["top1_agreement_with_fp32"] < 0.9
    assert any("kept because of --force-quantized" in w for w in card.quantization["warnings"])
    assert store_is_clean(tmp_path)


def test_threshold_must_be_a_fraction(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"quantization threshold 1.5 is out of range — use a value in 0–1"):
        export_model("unused.keras", "x", out=tmp_path, quantize="dynamic", quantize_threshold=1.5)
    with pytest.raises(ExportError, match=r"quantization mode 'int4' is not supported — use --quantize none, int8"):
        export_model("unused.keras", "x", out=tmp_path, quantize="int4")
    with pytest.raises(ExportError, match=r"--quantize int8-static needs a calibration set — pass --samples"):
        export_model("unused.keras", "x", out=tmp_path, quantize="int8-static")


def test_static_int8_qdq_calibrated_on_samples(digits: dict[str, Any], digits_export: tuple[Any, Path], tmp_path: Path) -> None:
    import onnx

    card = export_model(str(digits["path"]), "digits", out=tmp_path, quantize="static", samples=digits["samples"])
    check_version_dir(tmp_path / "digits" / "1")
    quant = card.quantization
    assert quant["mode"] == "int8-static" and quant["format"] == "QDQ" and quant["per_channel"] is True
    assert quant["calibration"] == {"method": "MinMax", "rows": 450}
    assert quant["top1_agreement_with_fp32"] >= 0.98 and quant["informative"] is True
    assert quant["bytes"] == card.artifact.bytes < quant["fp32_bytes"]
    ops = {node.op_type for node in onnx.load(tmp_path / "digits" / "1" / "model.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    fp32_card, _ = digits_export
    assert card.inputs == fp32_card.inputs and card.outputs == fp32_card.outputs


def test_regression_outputs_use_relative_error() -> None:
    import numpy as np

    from modelfn_export.quantize import measure

    fp32 = [{"score": np.array([[1.0], [-2.0]], np.float32), "probs": np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)}]
    quant = [{"score": np.array([[1.02], [-2.0]], np.float32), "probs": np.array([[0.6, 0.4], [0.55, 0.45]], np.float32)}]
    report = measure(fp32, quant)
    assert report.scores["probs"] == 0.5  # second row's argmax flipped
    assert report.relative_error == pytest.approx(0.01, rel=1e-3)  # 0.02 / max|fp32| = 0.02 / 2
    assert report.scores["score"] == pytest.approx(0.99, rel=1e-3)
    assert report.agreement == 0.5 and report.top1_agreement == 0.5


def test_quantizing_leaves_the_current_directory_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime's symbolic shape inference gives up on some models (this two-input one, the
    Transformer) and saves sym_shape_infer_temp.onnx (+ a uuid-named .data file) into the current
    directory; the export runs the quantizer in its staging directory, so nothing lands next to the
    user's files."""
    from .zoo import dict_io

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    card = export_model(dict_io(tmp_path).source, "two", out="store", quantize="int8", force_quantized=True)
    assert card.quantization["mode"] == "int8"
    assert sorted(p.name for p in cwd.iterdir()) == ["store"]
    assert store_is_clean(cwd / "store")


@pytest.mark.parametrize(
    ("fp32_ms", "int8_ms", "cpu", "warned"),
    [
        ({"batch_1_ms": 0.23, "batch_32_ms": 165.8}, {"batch_1_ms": 0.46, "batch_32_ms": 157.2}, [], True),
        ({"batch_1_ms": 0.4, "batch_32_ms": 12.0}, {"batch_1_ms": 0.2, "batch_32_ms": 5.0}, ["avx512_vnni"], False),
    ],
)
def test_the_speed_step_warns_when_int8_is_slower(fp32_ms, int8_ms, cpu, warned, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zoo's mobilenet-v2 row (0.23 vs 0.46 ms) is the first case: a warning naming the CPU's int8 instructions."""
    from modelfn_export.options import ExportOptions
    from modelfn_export.pipeline import finish
    from modelfn_export.pipeline.values import Latency, Quantized
    from modelfn_export.progress import Steps
    from modelfn_export.quantize import QuantReport

    monkeypatch.setattr(finish, "int8_features", lambda: {"model": "test cpu", "machine": "x86_64", "int8_dot_product": cpu})
    notes: list[str] = []
    report = QuantReport({"logits": 0.99}, 0.99, 0.1, None, 128, True)
    verdict = finish.judge_speed(Latency(fp32_ms, int8_ms), Quantized(Path("q.onnx"), "int8", report),
                                 ExportOptions("m", quantize="int8"), Steps(notes.append))
    assert verdict.speedup == {"batch_1": round(fp32_ms["batch_1_ms"] / int8_ms["batch_1_ms"], 3),
                               "batch_32": round(fp32_ms["batch_32_ms"] / int8_ms["batch_32_ms"], 3)}
    assert bool(verdict.warnings) is warned
    assert any(n.startswith("int8 vs fp32 on this CPU (test cpu; int8 dot-product instructions: ") for n in notes)
    if warned:
        assert "batch 1 0.50x" in verdict.warnings[0] and "instructions: none" in verdict.warnings[0]
        assert any(n.startswith("WARNING: int8 is slower than fp32") for n in notes)
