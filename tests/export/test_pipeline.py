"""The export pipeline: the runner (wiring, skipping, cleanup), the options object, and steps added from outside."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelfn_export import ExportError, export_model
from modelfn_export.options import ExportOptions
from modelfn_export.pipeline import EXPORT_PIPELINE, Pipeline, PipelineError, Step, run_pipeline
from modelfn_export.pipeline.values import Fp32Model, Quantized, Workspace

from .export_checks import check_version_dir, store_is_clean

# --- the runner, on toy values -------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Length:
    value: int


@dataclass(frozen=True)
class Shout:
    value: str


def measure(text: Text) -> Length:
    return Length(len(text.value))


def shout(text: Text) -> Shout:
    return Shout(text.value.upper())


def report(length: Length, loud: Shout | None) -> Text:
    return Text(f"{length.value}:{loud.value if loud else '-'}")


def test_values_pass_by_type_and_a_later_step_refines_one() -> None:
    pipeline = Pipeline([Step("measure", measure), Step("shout", shout), Step("report", report)], seeds=[Text])
    assert pipeline.run(Text("four"), result=Text) == Text("4:FOUR")
    assert pipeline.names == ["measure", "shout", "report"]
    assert pipeline.without("shout").run(Text("four"), result=Text) == Text("4:-")  # optional input: None


def test_a_step_whose_input_was_not_produced_is_skipped() -> None:
    calls: list[str] = []

    def maybe(text: Text) -> Shout | None:
        return Shout(text.value) if text.value == "yes" else None

    def after(loud: Shout) -> None:
        calls.append(loud.value)

    pipeline = Pipeline([Step("maybe", maybe), Step("after", after)], seeds=[Text])
    pipeline.run(Text("no"), result=Text)
    assert calls == []
    pipeline.run(Text("yes"), result=Text)
    assert calls == ["yes"]


def test_wiring_is_checked_when_the_pipeline_is_built() -> None:
    with pytest.raises(PipelineError, match=r"step 'report' needs Length \('length'\), which no seed or earlier step "
                                            r"provides: add a step that returns Length before 'report'"):
        Pipeline([Step("report", report), Step("measure", measure)], seeds=[Text])
    with pytest.raises(PipelineError, match=r"two steps are named 'measure'"):
        Pipeline([Step("measure", measure), Step("measure", measure)], seeds=[Text])
    pipeline = Pipeline([Step("measure", measure)], seeds=[Text])
    with pytest.raises(PipelineError, match=r"no step named 'nope': the steps are measure"):
        pipeline.insert(Step("shout", shout), after="nope")
    with pytest.raises(PipelineError, match=r"missing: Text"):
        pipeline.run(result=Length)
    with pytest.raises(PipelineError, match=r"no step produced Shout"):
        pipeline.run(Text("x"), result=Shout)


def test_insert_and_replace_return_new_pipelines() -> None:
    pipeline = Pipeline([Step("measure", measure)], seeds=[Text])
    assert pipeline.insert(Step("shout", shout), before="measure").names == ["shout", "measure"]
    assert pipeline.insert(Step("shout", shout), after="measure").names == ["measure", "shout"]
    assert pipeline.insert(Step("shout", shout)).names == ["measure", "shout"]
    with pytest.raises(PipelineError, match=r"step 'measure': parameter 'text' has no type annotation"):
        pipeline.replace("measure", Step("measure", lambda text: Length(2 * len(text.value))))  # cannot be wired...
    typed = pipeline.replace("measure", Step("measure", _double))
    assert typed.run(Text("ab"), result=Length) == Length(4)  # ...a typed one can
    assert pipeline.names == ["measure"]


def _double(text: Text) -> Length:
    return Length(2 * len(text.value))


def test_cleanups_run_when_a_step_fails_and_the_error_names_the_step() -> None:
    events: list[str] = []

    @contextmanager
    def resource() -> Any:
        events.append("open")
        try:
            yield
        finally:
            events.append("closed")

    def acquire(text: Text, cleanup: ExitStack) -> Length:
        cleanup.enter_context(resource())
        return Length(1)

    def explode(length: Length) -> None:
        raise RuntimeError("disk on fire")

    pipeline = Pipeline([Step("acquire", acquire), Step("explode", explode)], seeds=[Text])
    with pytest.raises(RuntimeError, match="disk on fire") as info:
        pipeline.run(Text("x"), result=Length)
    assert events == ["open", "closed"]
    assert info.value.__notes__ == ["(raised in pipeline step 'explode')"]
    assert str(info.value) == "disk on fire"  # the CLI's one-line message is unchanged
    answers = Pipeline(pipeline.steps, seeds=[Text], expected=(RuntimeError,))
    with pytest.raises(RuntimeError) as info:
        answers.run(Text("x"), result=Length)
    assert not hasattr(info.value, "__notes__") and events == ["open", "closed"] * 2


# --- the export pipeline and its options ---------------------------------------------------------


def test_the_export_runs_the_named_steps_in_order() -> None:
    names = EXPORT_PIPELINE.names
    for earlier, later in zip(
        ["check", "load", "convert", "parity", "optimize", "quantize", "card"],
        ["import", "convert", "parity", "optimize", "quantize", "card", "store"],
    ):
        assert names.index(earlier) < names.index(later), (earlier, later)
    assert names.index("parity") < names.index("parity-gate") < names.index("evidence") < names.index("optimize")
    assert names.index("quantize") < names.index("agreement") < names.index("artifact")


def test_options_are_validated_and_normalised_once() -> None:
    options = ExportOptions("digits", quantize="static", samples="x.npy", version=4)
    assert (options.quantize, options.version, options.quantizing) == ("int8-static", "4", True)
    assert ExportOptions("digits").quantizing is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.opset = 13  # type: ignore[misc]
    with pytest.raises(ExportError, match=r"model name 'Bad' is invalid"):  # the name is checked first
        ExportOptions("Bad", opset=9)
    with pytest.raises(ExportError, match=r"opset 9 is not supported"):
        dataclasses.replace(options, opset=9)  # a copy is validated too


def test_export_model_keeps_its_keywords() -> None:
    signature = inspect.signature(export_model)
    assert list(signature.parameters) == ["source", "name", *ExportOptions.names()[1:], "progress"]
    assert signature.parameters["opset"].default == 17 and signature.parameters["out"].default == "models"
    with pytest.raises(TypeError, match=r"^export_model\(\) got an unexpected keyword argument 'quantise' "
                                        r"\(did you mean 'quantize'\?\)$"):
        export_model("x.keras", "digits", quantise="int8")


def test_bad_options_fail_before_tensorflow_is_imported(tmp_path: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom modelfn_export import ExportError, export_model\nimport modelfn_export.pipeline\n"
         "try:\n    export_model('x.keras', 'digits', opset=12)\nexcept ExportError as err:\n    print(err)\n"
         "try:\n    export_model('x.keras', 'digits')\nexcept ExportError as err:\n    print(err)\n"
         "print('tensorflow' in sys.modules, 'tf2onnx' in sys.modules)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    assert probe.stdout.splitlines() == [
        "opset 12 is not supported — use 13–18 (default 17)",
        "source 'x.keras' does not exist — pass a .keras file, a SavedModel directory, or package.module:function",
        "False False",
    ]


# --- steps added from outside, on a real export ----------------------------------------------------


def test_added_steps_run_in_place_and_quantize_only_steps_are_skipped(digits: dict[str, Any], tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def spy_fp32(fp32: Fp32Model, workspace: Workspace) -> None:
        seen["fp32"] = fp32.path.parent == workspace.work and fp32.path.is_file()

    def spy_int8(quantized: Quantized) -> None:
        seen["int8"] = quantized.report.agreement

    pipeline = (
        EXPORT_PIPELINE.insert(Step("spy-fp32", spy_fp32), after="fp32")
        .insert(Step("spy-int8", spy_int8), after="agreement")
    )
    card = run_pipeline(str(digits["path"]), ExportOptions("digits", out=tmp_path), pipeline=pipeline)
    assert seen == {"fp32": True} and card.quantization == {"mode": "none"}
    options = ExportOptions("digits", out=tmp_path, quantize="int8", samples=digits["samples"])
    card = run_pipeline(str(digits["path"]), options, pipeline=pipeline)
    assert seen["int8"] == card.quantization["agreement"] >= 0.98
    check_version_dir(tmp_path / "digits" / "2")


def test_a_failing_added_step_leaves_nothing_behind(digits: dict[str, Any], tmp_path: Path) -> None:
    def refuse(workspace: Workspace) -> None:
        assert (workspace.path / "model.onnx").is_file() and (workspace.path / "modelcard.json").is_file()
        raise ExportError("refused by policy", "ask the platform team")

    pipeline = EXPORT_PIPELINE.insert(Step("policy", refuse), before="store")
    with pytest.raises(ExportError, match=r"^refused by policy — ask the platform team$") as info:
        run_pipeline(str(digits["path"]), ExportOptions("digits", out=tmp_path / "store"), pipeline=pipeline)
    assert not hasattr(info.value, "__notes__")  # a user's error needs no pointer into the code
    assert not (tmp_path / "store").exists() and store_is_clean(tmp_path)
