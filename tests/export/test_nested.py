"""Nested function calls: Keras runs grouped convolutions through an XLA-compiled nested function, which
tf2onnx cannot convert; the ``nested-functions`` step inlines it (the zoo's grouped-conv and convnext-tiny
entries export and serve with parity)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfn_export import ExportError
from modelfn_export.options import ExportOptions
from modelfn_export.pipeline import EXPORT_PIPELINE, run_pipeline

from .zoo import grouped_conv


def test_without_the_inlining_step_a_grouped_conv_is_refused_naming_the_nested_call(tmp_path: Path) -> None:
    entry = grouped_conv(tmp_path)
    with pytest.raises(ExportError) as caught:
        run_pipeline(entry.source, ExportOptions("grouped", out=tmp_path / "store"), pipeline=EXPORT_PIPELINE.without("nested-functions"))
    assert "StatefulPartitionedCall" in caught.value.problem


def test_the_inlining_step_runs_before_convert() -> None:
    names = EXPORT_PIPELINE.names
    assert names.index("conversion") < names.index("nested-functions") < names.index("convert")
    assert names.index("text-ops") < names.index("convert") < names.index("custom-ops") < names.index("card")
