"""Run by kserve's own Python client in its own environment (.venv/peers): the calls a KServe user makes.

    .venv/peers/bin/python tests/local/kserve_peer.py BASE_URL PIXELS_JSON [API_KEY]

Prints one JSON object with what each call returned.
"""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main(base: str, pixels: list, key: str | None) -> dict:
    headers = {"x-api-key": key} if key else None
    x = np.array(pixels, dtype=np.float32)
    answers: dict = {}
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=60)) as v2:
        answers["v2_server_live"] = await v2.is_server_live(base, headers=headers)
        answers["v2_server_ready"] = await v2.is_server_ready(base, headers=headers)
        answers["v2_model_ready"] = await v2.is_model_ready(base, "digits", headers=headers)
        tensor = InferInput("pixels", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        result = await v2.infer(base, InferRequest(model_name="digits", infer_inputs=[tensor]), model_name="digits",
                                headers=headers)
        answers["v2_probs"] = result.outputs[0].as_numpy().tolist()
    async with InferenceRESTClient(RESTConfig(protocol="v1", timeout=60)) as v1:
        answers["v1_server_live"] = await v1.is_server_live(base, headers=headers)
        answers["v1_model_ready"] = await v1.is_model_ready(base, "digits", headers=headers)
        answers["v1_predictions"] = (await v1.infer(base, {"instances": x.tolist()}, model_name="digits", headers=headers))["predictions"]
    return answers


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))))
