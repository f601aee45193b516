"""The function's structured logger, EMF metrics and X-Ray tracer (powertools), created once per process.

Service name, metrics namespace and log level come from the standard powertools environment
variables (``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``)
set in template.yaml. The tracer switches itself off outside Lambda and under ``sam local``.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="modelfn")
metrics = Metrics(namespace="modelfn", service="modelfn")
tracer = Tracer(service="modelfn")
