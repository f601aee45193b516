"""Lambda handler of the usage-aggregator function (template.yaml: ``Handler: usage_aggregator.lambda_handler``).

CloudWatch Logs delivers the model functions' metering lines here (one subscription filter per model function's
log group); ``modelfn_runtime.usage.UsageAggregator`` adds them to the usage table, each log event once. It imports
no numpy and no onnxruntime: boto3 (in the Lambda runtime) and powertools' logger only.
"""

from typing import Any

from modelfn_runtime.usage import UsageAggregator, aggregator_from_environment

_AGGREGATOR: UsageAggregator | None = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    global _AGGREGATOR
    if _AGGREGATOR is None:
        _AGGREGATOR = aggregator_from_environment()
    summary = _AGGREGATOR.handle(event)
    return {"events": summary.events, "counted": summary.counted, "duplicates": summary.duplicates,
            "rejected": summary.rejected}
