"""One rule, one message: the OIP and TF Serving codecs and ``ModelSession.run`` refuse the same mistake with the same
words, because all three ask ``validation``."""

from __future__ import annotations

import numpy as np
import pytest

from modelfn_runtime.errors import BadRequest
from modelfn_runtime.service import InferenceService
from modelfn_runtime.validation import Limits

from .conftest import FEATURES, IDS, body_json, oip_inputs, post


def error(response) -> str:
    assert response.status == 400, response.body
    return body_json(response)["error"]


def refusal(call) -> str:
    with pytest.raises(BadRequest) as raised:
        call()
    return raised.value.message


def test_unknown_input_reads_the_same_in_both_protocols_and_the_session(service, toy_model):
    renamed = [{**oip_inputs()[0], "name": "pixels"}, oip_inputs()[1]]
    oip = error(service.handle(post("/v2/models/toy/infer", {"inputs": renamed})))
    tfs = error(service.handle(post("/v1/models/toy:predict", {"inputs": {"pixels": FEATURES.tolist(), "ids": IDS.tolist()}})))
    session = refusal(lambda: toy_model.run({"pixels": FEATURES, "ids": IDS}))
    assert oip == tfs == session == "unknown input 'pixels'; this model's inputs are ['features', 'ids']"


def test_batch_limit_reads_the_same_for_oip_tensors_and_tf_serving_rows_and_columns(toy_model):
    small = InferenceService(toy_model, limits=Limits(max_batch_size=1))
    oip = error(small.handle(post("/v2/models/toy/infer", {"inputs": oip_inputs()})))
    rows = error(small.handle(post("/v1/models/toy:predict", {"instances": [{"features": f, "ids": i}
                                                                             for f, i in zip(FEATURES.tolist(), IDS.tolist())]})))
    columns = error(small.handle(post("/v1/models/toy:predict", {"inputs": {"features": FEATURES.tolist(), "ids": IDS.tolist()}})))
    rule = "has a batch of 2 but this model accepts at most 1 per request; split the batch into several requests"
    assert oip == f"input 'features' {rule}" and columns == f"input 'features' {rule}" and rows == f'"instances" {rule}'


def test_shape_and_datatype_read_the_same_in_the_codec_and_the_session(service, toy_model):
    wide = [{**oip_inputs()[0], "shape": [1, 8]}, oip_inputs()[1]]
    assert error(service.handle(post("/v2/models/toy/infer", {"inputs": wide}))) == refusal(
        lambda: toy_model.run({"features": np.zeros((1, 8), np.float32), "ids": IDS[:1]}))
    doubles = [{**oip_inputs()[0], "datatype": "FP64"}, oip_inputs()[1]]
    assert error(service.handle(post("/v2/models/toy/infer", {"inputs": doubles}))) == refusal(
        lambda: toy_model.run({"features": FEATURES.astype(np.float64), "ids": IDS}))
