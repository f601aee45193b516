"""String (BYTES) tensors round-trip through ONNX Runtime unchanged: OIP JSON, OIP binary
(tritonclient's own encoder/decoder), and TF Serving with ``{"b64": ...}``.

The model is hand-built with onnx.helper: ``text`` (BYTES, [-1, 2]) -> ``echo`` and ``echo_bytes``
(Identity each). ``tests/export/test_zoo.py`` covers an exported StringLookup model and a raw-text
(TextVectorization) model. A model with ``ai.onnx.contrib`` ops is served when its card names
onnxruntime-extensions: the session registers the library (``modelfn_runtime.custom_ops``).
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import tritonclient.http as triton
from onnx import TensorProto, helper

from modelfn_runtime.http import Headers, HttpRequest
from modelfn_runtime.modelcard import TensorSpec
from modelfn_runtime.service import InferenceService
from modelfn_runtime.session import ModelSession

from .conftest import RecordingMeter, body_json, post
from .toy_model import _write

TEXT = [["hello", "wörld"], ["", "日本語 ✓"]]


@pytest.fixture(scope="module")
def strings_service(tmp_path_factory: pytest.TempPathFactory) -> InferenceService:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"]), helper.make_node("Identity", ["text"], ["echo_bytes"])],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", 2])],
        [
            helper.make_tensor_value_info("echo", TensorProto.STRING, ["batch", 2]),
            helper.make_tensor_value_info("echo_bytes", TensorProto.STRING, ["batch", 2]),
        ],
    )
    directory = _write(
        tmp_path_factory.mktemp("store") / "strings" / "1",
        graph,
        "strings",
        "1",
        [TensorSpec("text", "BYTES", [-1, 2])],
        [TensorSpec("echo", "BYTES", [-1, 2]), TensorSpec("echo_bytes", "BYTES", [-1, 2])],
    )
    return InferenceService(ModelSession.load(directory, preference="cpu"), meter=RecordingMeter())


def test_oip_json_round_trip(strings_service: InferenceService) -> None:
    flat = [s for row in TEXT for s in row]
    response = strings_service.handle(
        post("/v2/models/strings/infer", {"inputs": [{"name": "text", "shape": [2, 2], "datatype": "BYTES", "data": flat}]})
    )
    assert response.status == 200, response.body
    outputs = {o["name"]: o for o in body_json(response)["outputs"]}
    assert outputs["echo"] == {"name": "echo", "datatype": "BYTES", "shape": [2, 2], "data": flat}


def test_oip_binary_round_trip_with_tritonclient(strings_service: InferenceService) -> None:
    data = np.array([[s.encode("utf-8") for s in row] for row in TEXT], dtype=np.object_)
    text = triton.InferInput("text", [2, 2], "BYTES")
    text.set_data_from_numpy(data, binary_data=True)
    wanted = [triton.InferRequestedOutput("echo", binary_data=True), triton.InferRequestedOutput("echo_bytes", binary_data=False)]
    body, header_length = triton.InferenceServerClient.generate_request_body([text], outputs=wanted)
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(header_length)}
    response = strings_service.handle(HttpRequest("POST", "/v2/models/strings/infer", Headers(headers), body=body))
    assert response.status == 200, response.body
    length = int({k.lower(): v for k, v in response.headers.items()}["inference-header-content-length"])
    result = triton.InferResult.from_response_body(response.body, header_length=length)
    assert result.as_numpy("echo").tolist() == data.tolist()  # bytes, exactly as sent
    assert result.as_numpy("echo_bytes").tolist() == [[s for s in row] for row in TEXT]  # JSON output: text


def test_tfserving_b64_in_and_out(strings_service: InferenceService) -> None:
    def b64(text: str) -> dict[str, str]:
        return {"b64": base64.b64encode(text.encode("utf-8")).decode()}

    instances = [[b64(TEXT[0][0]), TEXT[0][1]], [b64(TEXT[1][0]), b64(TEXT[1][1])]]
    response = strings_service.handle(post("/v1/models/strings:predict", {"instances": instances}))
    assert response.status == 200, response.body
    predictions = body_json(response)["predictions"]
    assert [p["echo"] for p in predictions] == TEXT
    # outputs named *_bytes come back base64-encoded, as TF Serving does
    assert [p["echo_bytes"] for p in predictions] == [[b64(s) for s in row] for row in TEXT]

    response = strings_service.handle(post("/v1/models/strings:predict", {"inputs": {"text": TEXT}}))
    assert response.status == 200 and body_json(response)["outputs"]["echo"] == TEXT


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"instances": [[{"b64": base64.b64encode(b"\xff\xfe").decode()}, "x"]]}, "element 0 is not valid UTF-8"),
        ({"instances": [[{"b64": "not base64!"}, "x"]]}, 'has a "b64" value that is not valid base64'),
        ({"instances": [[1, "x"]]}, 'send strings or {"b64": "<base64>"} objects'),
        ({"instances": [["a"], ["b", "c"]]}, "is ragged"),
    ],
)
def test_bad_strings_are_400(strings_service: InferenceService, payload: dict, message: str) -> None:
    response = strings_service.handle(post("/v1/models/strings:predict", payload))
    assert response.status == 400, response.body
    assert message in json.loads(response.body)["error"]


def test_no_repr_of_bytes_reaches_the_model(strings_service: InferenceService) -> None:
    result = strings_service.model.run({"text": np.array([[b"hello", b"x"]], dtype=object)})
    assert result["echo"].tolist() == [[b"hello", b"x"]]  # not "b'hello'"



CUSTOM_OPS = {"library": "onnxruntime-extensions", "domain": "ai.onnx.contrib", "ops": ["StringConcat"]}


@pytest.fixture(scope="module")
def contrib_dir(tmp_path_factory: pytest.TempPathFactory):
    """``text`` -> ai.onnx.contrib StringConcat(text, "!") -> ``shout``: runs only with onnxruntime-extensions."""
    graph = helper.make_graph(
        [helper.make_node("Shape", ["text"], ["shape"]), helper.make_node("Expand", ["bang", "shape"], ["bangs"]),
         helper.make_node("StringConcat", ["text", "bangs"], ["shout"], domain="ai.onnx.contrib")],
        "contrib",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", 1])],
        [helper.make_tensor_value_info("shout", TensorProto.STRING, ["batch", 1])],
        initializer=[helper.make_tensor("bang", TensorProto.STRING, [1], [b"!"])],
    )
    return _write(tmp_path_factory.mktemp("store") / "contrib" / "1", graph, "contrib", "1",
                  [TensorSpec("text", "BYTES", [-1, 1])], [TensorSpec("shout", "BYTES", [-1, 1])], custom_ops=CUSTOM_OPS)


def test_a_card_naming_the_extensions_gets_them_registered(contrib_dir) -> None:
    service = InferenceService(ModelSession.load(contrib_dir, preference="cpu"), meter=RecordingMeter())
    response = service.handle(post("/v2/models/contrib/infer", {"inputs": [
        {"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": ["hello", "wörld"]}]}))
    assert response.status == 200, response.body
    assert body_json(response)["outputs"][0]["data"] == ["hello!", "wörld!"]
    instances = [[{"b64": base64.b64encode("日本".encode()).decode()}]]
    response = service.handle(post("/v1/models/contrib:predict", {"instances": instances}))
    assert response.status == 200 and body_json(response)["predictions"] == [["日本!"]]


def test_the_library_is_found_without_importing_its_package() -> None:
    import subprocess
    import sys

    code = ("import sys; from modelfn_runtime.custom_ops import library_path; path = library_path(); "
            "assert 'onnxruntime_extensions' not in sys.modules and 'onnx' not in sys.modules, sorted(sys.modules); print(path)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(".so")


def test_a_missing_library_is_a_load_error_naming_the_fix(contrib_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelfn_runtime import custom_ops
    from modelfn_runtime.artifacts import ModelLoadError

    monkeypatch.setattr(custom_ops, "_found", {})
    monkeypatch.setattr(custom_ops.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="onnxruntime-extensions.*not installed.*ONNX Runtime layer"):
        ModelSession.load(contrib_dir, preference="cpu")
