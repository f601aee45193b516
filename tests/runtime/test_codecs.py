"""The bulk JSON codec answers exactly as the leaf-by-leaf reference does (issue 14, item 1).

``tensor_from_json`` builds numeric tensors in bulk and hands anything unusual to ``reference_tensor``; these
properties hold the two to the same array or the same 400 message for any data, and the JSON parse (orjson, with
the standard library behind it) to the standard library's answer on every refusal.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelfn_runtime.errors import BadRequest
from modelfn_runtime.http import HttpRequest, dumps
from modelfn_runtime.modelcard import TensorSpec
from modelfn_runtime.protocols import oip, tfserving
from modelfn_runtime.protocols.common import json_value, parse_json, reference_tensor, tensor_from_json
from modelfn_runtime.validation import Limits

EXAMPLES = int(os.environ.get("MODELFN_FUZZ_EXAMPLES", "600"))
CASES = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

leaves = (st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from([2**53 + 1, 2**63, 2**64 - 1, -(2**63), 255, 256])
          | st.floats(allow_nan=True, allow_infinity=True) | st.booleans() | st.sampled_from([0.5, 1.0, -1.0, 1e39, 7e4])
          | st.none() | st.sampled_from(["NaN", "Infinity", "-Infinity", "1.5", "x"]) | st.just({}))
uniform_rows = st.integers(1, 4).flatmap(lambda width: st.lists(st.lists(leaves, min_size=width, max_size=width), max_size=4))
data = st.recursive(leaves, lambda children: st.lists(children, max_size=4), max_leaves=24) | uniform_rows
datatypes = st.sampled_from(["FP32", "FP64", "FP16", "INT64", "INT32", "INT8", "UINT8", "UINT64", "BOOL"])
shapes = st.sampled_from([[-1], [-1, 2], [-1, 3], [2, 2], [-1, 2, 2], [-1, -1]])


def outcome(build):
    """The array built (dtype, shape, values) or the refusal's message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            array = build()
    except BadRequest as error:
        return ("400", error.message)
    return (str(array.dtype), array.shape, array.tobytes())


@CASES
@given(data=data, datatype=datatypes, shape=shapes)
def test_bulk_path_answers_as_the_reference_for_tf_serving_nesting(data, datatype, shape):
    spec, limits = TensorSpec("x", datatype, shape), Limits(max_batch_size=3, max_elements=12)
    assert outcome(lambda: tensor_from_json("x", data, spec, limits)) == outcome(
        lambda: reference_tensor("x", data, spec, limits))


@CASES
@given(data=data, datatype=datatypes, declared=st.sampled_from([[4], [2, 2], [1, 4], [0], [3], [2, 1, 2]]))
def test_bulk_path_answers_as_the_reference_for_a_declared_shape(data, datatype, declared):
    spec, limits = TensorSpec("x", datatype, [-1] * len(declared)), Limits()
    assert outcome(lambda: tensor_from_json("x", data, spec, limits, declared=declared)) == outcome(
        lambda: reference_tensor("x", data, spec, limits, declared=declared))


def test_bulk_path_names_the_element_it_refuses():
    spec = TensorSpec("x", "INT64", [-1, 2])
    with pytest.raises(BadRequest, match=r"holds fractional numbers but its datatype is INT64 \(element 3\)"):
        tensor_from_json("x", [[1, 2.0], [3, 4.5]], spec, Limits())
    with pytest.raises(BadRequest, match=r"holds NaN or Infinity but its datatype is INT64 \(element 1\)"):
        tensor_from_json("x", [[1, float("inf")], [3, 4.5]], spec, Limits())
    with pytest.raises(BadRequest, match="element 2 is the string '1'"):
        tensor_from_json("x", [[1, 2], ["1", 4]], TensorSpec("x", "FP32", [-1, 2]), Limits())


@pytest.mark.parametrize("body", [
    b'{"a": NaN}', b'{"a": [Infinity, -Infinity]}', b'{"a": 1e400}', b'{"a": "\\ud800"}',
    b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}", b'{"a": [1.5, -0, 0.1, 1e-7, 123456789012345678]}', b"[" * 3000 + b"]" * 3000,
    '{"a": "é"}'.encode("utf-16"), b'{"a": "\xff"}', b"", b"{,}",
])
def test_the_parse_is_the_standard_librarys_where_it_decides(body):
    """Non-standard tokens, surrogates, BOMs, UTF-16, deep nesting: the value (or refusal) json.loads gives. The one
    difference, integers over 64 bits read as floats, is the next test's."""
    def stdlib():
        try:
            return json.loads(body)
        except RecursionError:
            return "deep"
        except ValueError:
            return "invalid"

    def ours():
        try:
            return parse_json(body)
        except BadRequest as error:
            return "deep" if "nested too deeply" in error.message else "invalid"

    expected, got = stdlib(), ours()
    assert json.dumps(got) == json.dumps(expected) if expected not in ("deep", "invalid") else got == expected


def test_a_refused_request_reads_as_the_standard_library_parse_words_it():
    """orjson reads integers over 64 bits as floats; the refusal is decoded again from the exact parse."""
    body = b'{"inputs": [{"name": "x", "shape": [0, 1180591620717411303424], "datatype": "FP32", "data": []}]}'
    card = oip.ModelCard.from_dict({"name": "m", "version": "1", "created": "", "opset": 17, "producers": {},
                                    "artifact": {"file": "model.onnx", "sha256": "", "bytes": 0}, "parity": {}, "source": {},
                                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}], "outputs": []})
    with pytest.raises(BadRequest, match="has a dimension over 2147483647"):
        oip.decode_infer(HttpRequest("POST", "/v2/models/m/infer", body=body), card)
    request = HttpRequest("POST", "/v1/models/m:predict", body=b'{"instances": [[1, 2, 3, 99999999999999999999999]]}')
    with pytest.raises(BadRequest, match="holds an integer too large|outside"):
        tfserving.decode_predict(request, [TensorSpec("x", "INT64", [-1, 4])])


@pytest.mark.parametrize("array", [
    np.array([[0.1, 1 / 3], [2.5, -0.0]], np.float32), np.arange(6, dtype=np.int64).reshape(2, 3), np.array([True, False]),
    np.array([1.5, np.nan, np.inf, -np.inf], np.float64), np.array([65504, 0.1], np.float16), np.array(3.5, np.float32),
    np.zeros((2, 0), np.float32), np.array([2**64 - 1], np.uint64), np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2],
])
def test_responses_carry_each_value_exactly(array):
    """The bulk encoder writes each value so that it reads back as the same value of the output's datatype."""
    written = json.loads(dumps({"data": json_value(array)}))["data"]
    values = np.array(written, dtype=object)
    if array.dtype.kind == "f":
        values = np.array([{"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}.get(v, v) if isinstance(v, str) else v
                           for v in np.ravel(values)], dtype=np.float64).reshape(array.shape)
    np.testing.assert_array_equal(np.asarray(values).astype(array.dtype), array)
