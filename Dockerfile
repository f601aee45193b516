# The CPU container image of a modelfn model function (catalog: package_type: Image).
#
# `modelfn build` prepares the build context (.aws-sam/build/<LogicalId>/) and runs `docker build` on this file:
#   python/   onnxruntime, onnxruntime-extensions + numpy: the ONNX Runtime layer's wheels     -> /opt/python
#   task/     app.py, modelfn_runtime/ and its requirements, as in the Zip functions         -> /var/task
#   models/   the function's model when `modelfn build --model-store` has it (baked in); otherwise the
#             function reads MODEL_URI (s3://...) at init like a Zip function
# Nothing is downloaded while the image builds. BASE_IMAGE is AWS's Lambda Python 3.12 base image; the tests
# substitute a locally built stand-in (tests/infra/lambda_base/), because no registry is reachable there.
ARG BASE_IMAGE=public.ecr.aws/lambda/python:3.12
FROM ${BASE_IMAGE}
COPY python/ /opt/python/
COPY task/ ${LAMBDA_TASK_ROOT}/
COPY models/ ${LAMBDA_TASK_ROOT}/models/
CMD ["app.lambda_handler"]
