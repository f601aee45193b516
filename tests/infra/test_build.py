"""`modelfn build`: lean per-function artifacts for python3.12, built without a python3.12 interpreter, checked
against Lambda's limits, and really importable and servable by python3.12 from the built directories alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelfn_infra.build import MB, UNZIPPED_LIMIT, ZIPPED_LIMIT, Artifact, BuildError, BuildResult, FunctionBuild, check

from ..conftest import REPO

PYTHON312_CANDIDATES = ("python3.12", "/root/.pyenv/versions/3.12.1/bin/python3.12")


def python312() -> str:
    for candidate in PYTHON312_CANDIDATES:
        found = shutil.which(candidate)
        if found and subprocess.run([found, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"]).returncode == 0:
            return found
    pytest.skip("no python3.12 interpreter on this machine to import the built artifacts with (the build itself needs none)")


def test_the_build_ran_on_another_interpreter_than_the_target():
    assert sys.version_info[:2] != (3, 12), "this suite proves the cross-platform build only when run on Python != 3.12"


def test_artifacts_are_lean_and_under_lambdas_limits(built):
    functions = {f.logical_id: f for f in built.functions}
    server, digits = functions["ServerFunction"], functions["DigitsFunction"]
    assert server.layers == [] and digits.layers == ["OnnxRuntimeX8664Layer"]
    code, layer = built.artifacts[server.code], built.artifacts["OnnxRuntimeX8664Layer"]
    assert not {"onnxruntime", "numpy", "botocore", "boto3"} & set(code.packages), code.packages
    assert {"onnxruntime", "onnxruntime_extensions", "numpy"} <= set(layer.packages)  # extensions: raw-text models
    assert not {"tensorflow", "tf2onnx", "onnx", "keras"} & (set(code.packages) | set(layer.packages))
    assert code.unzipped < 10 * MB, "the catch-all carries only the runtime code and powertools"
    for artifact in built.artifacts.values():
        assert 0 < artifact.zipped <= ZIPPED_LIMIT
    assert digits.unzipped(built.artifacts) <= UNZIPPED_LIMIT
    layer_root = layer.path / "python"
    assert not (layer_root / "onnxruntime" / "tools").exists() and not (layer_root / "onnxruntime" / "transformers").exists()
    assert not list(layer_root.glob("numpy/**/tests")) and not list(layer_root.glob("**/*.h"))
    report = json.loads((built.build_dir / "size-report.json").read_text())
    assert report["functions"][0]["unzipped_with_layers"] > 0 and report["limits"]["zipped"] == ZIPPED_LIMIT


def test_built_template_points_at_the_built_directories(built):
    template = yaml.safe_load(built.template.read_text())
    resources = template["Resources"]
    assert resources["DigitsFunction"]["Properties"]["CodeUri"] == "InferenceCodeX8664"
    assert resources["OnnxRuntimeX8664Layer"]["Properties"]["ContentUri"] == "OnnxRuntimeX8664Layer"
    assert "Metadata" not in resources["OnnxRuntimeX8664Layer"], "sam must not rebuild the layer"
    for name in ("InferenceCodeX8664", "OnnxRuntimeX8664Layer"):
        assert (built.template.parent / name).is_dir()


def _synthetic(tmp_path: Path, **sizes) -> BuildResult:
    code = Artifact("Code", tmp_path, unzipped=sizes.get("code", MB), zipped=sizes.get("code_zipped", MB), packages=sizes.get("code_packages", ["modelfn_runtime"]))
    layer = Artifact("Layer", tmp_path, unzipped=sizes.get("layer", 100 * MB), zipped=sizes.get("layer_zipped", 40 * MB), packages=["onnxruntime", "numpy"])
    functions = [
        FunctionBuild("ServerFunction", "Zip", "x86_64", serves_model=False, code="Code", layers=sizes.get("server_layers", [])),
        FunctionBuild("DigitsFunction", "Zip", "x86_64", serves_model=True, code="Code", layers=["Layer"]),
    ]
    return BuildResult(tmp_path, tmp_path / "template.yaml", {"Code": code, "Layer": layer}, functions)


def test_check_accepts_a_lean_build(tmp_path):
    check(_synthetic(tmp_path))


@pytest.mark.parametrize(
    "sizes,message",
    [
        ({"layer_zipped": 51 * MB}, "Layer is 51.0 MB zipped, over Lambda's 50 MB direct-upload limit"),
        ({"layer": 249 * MB, "code": 2 * MB}, "DigitsFunction is 251.0 MB unzipped with its layers, over Lambda's 250 MB"),
        ({"code_packages": ["modelfn_runtime", "tensorflow"]}, "Code contains ['tensorflow']"),
        ({"code_packages": ["onnx"]}, "Code contains ['onnx']"),
        ({"server_layers": ["Layer"]}, "ServerFunction serves no model but carries ['numpy', 'onnxruntime']"),
    ],
)
def test_check_fails_the_build_naming_the_fix(tmp_path, sizes, message):
    with pytest.raises(BuildError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        check(_synthetic(tmp_path, **sizes))


RUN_FUNCTION = """
import json, sys
sys.path[:0] = {paths}
import app
event = json.load(open({event!r}))
class Context:
    aws_request_id = "r1"; function_name = "f"; memory_limit_in_mb = 1024; invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:f"
    def get_remaining_time_in_millis(self): return 10000
responses = [app.lambda_handler(e, Context()) for e in [event, *json.loads({extra!r})]]
banned = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf2onnx', 'onnx', 'keras'))
heavy = sorted(m for m in ('numpy', 'onnxruntime') if m in sys.modules)
origin = sys.modules['onnxruntime'].__file__ if 'onnxruntime' in sys.modules else None
print(json.dumps({{"responses": responses, "banned": banned, "heavy": heavy, "origin": origin}}))
"""


def _run_built(python: str, paths: list[Path], env: dict[str, str], event: Path, extra: list | None = None) -> dict:
    script = RUN_FUNCTION.format(paths=[str(p) for p in paths], event=str(event), extra=json.dumps(extra or []))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MODEL"))}
    # -I -S: no user site, no site-packages, so only the built directories can satisfy an import
    result = subprocess.run([python, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120,
                            env={**base, "POWERTOOLS_METRICS_NAMESPACE": "modelfn", **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_model_function_serves_from_code_and_layer_alone_on_python312(built, digits_store):
    python = python312()
    code = built.artifacts["InferenceCodeX8664"].path
    layer = built.artifacts["OnnxRuntimeX8664Layer"].path / "python"
    out = _run_built(python, [code, layer], {"MODEL_NAME": "digits", "MODEL_VERSION": "1",
                                              "MODEL_URI": str(digits_store / "digits" / "1"), "MODELFN_MODELS": "digits"},
                     REPO / "events" / "rest-infer-json.json")
    response = out["responses"][0]
    assert response["statusCode"] == 200, response
    outputs = json.loads(response["body"])["outputs"]
    assert outputs[0]["name"] == "probs" and len(outputs[0]["data"]) == 10
    assert out["banned"] == [] and out["origin"].startswith(str(layer))


def test_catch_all_serves_from_its_code_alone_without_numpy_or_onnxruntime(built):
    python = python312()
    code = built.artifacts["InferenceCodeX8664"].path
    unknown_model = json.loads((REPO / "events" / "rest-infer-json.json").read_text())
    unknown_model["path"] = "/v2/models/nope/infer"
    # a keyed caller (API Gateway checked the key): the 404 may then name the served models
    unknown_model.setdefault("requestContext", {}).setdefault("identity", {})["apiKeyId"] = "key-1"
    extra_event = REPO / "events" / "rest-health-live.json"
    out = _run_built(python, [code], {"MODELFN_MODELS": "digits"}, extra_event, extra=[unknown_model])
    live, missing = out["responses"]
    assert live["statusCode"] == 200
    assert missing["statusCode"] == 404 and "digits" in json.loads(missing["body"])["error"]
    assert out["heavy"] == [], "the catch-all imported numpy/onnxruntime"


@pytest.mark.slow
def test_arm64_models_get_an_arm64_layer_and_code(tmp_path):
    from modelfn_infra.build import build
    from modelfn_infra.catalog import Catalog, ModelEntry, dump_template, render_template

    template = tmp_path / "template.yaml"
    catalog = Catalog([ModelEntry("digits", "1", architecture="arm64")])
    template.write_text(dump_template(render_template(catalog)))
    result = build(template, tmp_path / "build", source_root=REPO, log=lambda message: None)
    functions = {f.logical_id: f for f in result.functions}
    assert functions["DigitsFunction"].layers == ["OnnxRuntimeArm64Layer"]
    assert functions["DigitsFunction"].code == "InferenceCodeArm64" and functions["ServerFunction"].code == "InferenceCodeX8664"
    binding = next((result.artifacts["OnnxRuntimeArm64Layer"].path / "python" / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so"))
    assert "aarch64" in binding.name
    assert binding.read_bytes()[18:20] == (183).to_bytes(2, "little"), "ELF e_machine is EM_AARCH64"
