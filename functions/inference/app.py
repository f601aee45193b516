"""Lambda handler module for every modelfn function (template.yaml: ``Handler: app.lambda_handler``)."""

from modelfn_runtime.handler import lambda_handler

__all__ = ["lambda_handler"]
