"""The record handler of event-triggered work, wrapped in powertools' idempotency (the SQS trigger adds batch).

``JobRunner.run`` is the straight line for one record: ``inputs.envelopes`` -> ``Service.handle`` (one metered
request per chunk) -> ``results.Collector`` -> ``results.deliver``. ``JobRunner.idempotent`` wraps it
in powertools' ``idempotent_function`` on the DynamoDB table ``MODELFN_IDEMPOTENCY_TABLE``, keyed by
the job's identity (an SQS message id, or bucket/key@ETag of an S3 object), so a redelivered message or
a retried S3 event returns the saved summary instead of producing a second, possibly different,
output. The in-progress lock expires with the invocation's remaining time (``register_lambda_context``),
so a record whose invocation timed out is picked up again by the next delivery.

The handler makes one runner per service, on the first record or pointer event (a service that reloads its model
is a new service, so its runner is new too). powertools' batch and idempotency utilities import boto3/botocore
(about 1.2 s), and the input decoders numpy: this module is imported on the first record event, never by API-only
invocations.

Example:
    >>> runner = JobRunner(service, settings=Settings.from_env())     # doctest: +SKIP
    >>> runner.idempotent(context)(job)                                # doctest: +SKIP
    {'status': 200, 'output': 's3://data/outbox/digits/batch.npy.json', ...}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import aws
from ..http import status_class
from ..interfaces import Service
from ..observability import logger
from . import inputs, results
from .job import Job, RetryableJobError, Settings, Summary


class JobRunner:
    """Runs the jobs of one service: each through ``service.handle``, to its one result in the data bucket."""

    def __init__(self, service: Service, *, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self._idempotent: Callable[..., Summary] | None = None
        self._warned = False

    def run(self, job: Job) -> Summary:
        """Run one job to its one result; RetryableJobError when it must be delivered again (also while the model
        cannot load yet: every job is retried then, none is refused)."""
        unavailable, card = self.service.unavailable, self.service.card
        if unavailable is not None:
            raise RetryableJobError(f"model {unavailable.name!r} cannot load yet ({str(unavailable.reason)[:200]}); "
                                    "the event is delivered again")
        model, version = (card.name, card.version) if card else (job.model, job.version or "")
        with results.Collector() as collector:
            for envelope in inputs.envelopes(job, card, self.settings):
                response = self.service.handle(envelope)
                if status_class(response.status) == "server_error":
                    raise RetryableJobError(f"{job.source[:120]}: the function answered {response.status}; see its logs")
                if not collector.add(response):
                    break
            summary = results.deliver(job, collector.finish(), model=model, version=version, settings=self.settings)
        log = logger.info if status_class(summary["status"]) == "ok" else logger.warning
        log("job finished", source=job.source[:200], status=summary["status"], output=summary["output"], items=summary["items"])
        return summary

    def dead_letter(self, job: Job, error: BaseException) -> None:
        """Best effort, before the event source dead-letters the job's event: write why to errors/."""
        status = 504 if "in progress" in str(error).lower() else 503
        result = results.JobResult(status, {"error": f"dead-lettered after repeated failures; last: {str(error)[:300]}",
                                            "dead_lettered": True}, 0)
        card = self.service.card
        try:
            model, version = (card.name, card.version) if card else (job.model, "")
            results.deliver(job, result, model=model, version=version, settings=self.settings)
        except Exception as problem:  # the event still reaches the dead-letter queue; the log keeps the reason
            logger.error("could not record the dead-letter reason", source=job.source[:200], reason=str(problem)[:200])
        logger.error("job dead-lettered", source=job.source[:200], reason=str(error)[:300])

    def idempotent(self, context: Any) -> Callable[[Job], Summary]:
        """``run`` behind powertools idempotency; plain ``run`` (logged once) when no table is configured."""
        if not self.settings.idempotency_table:
            if not self._warned:
                logger.warning("MODELFN_IDEMPOTENCY_TABLE is not set: redelivered events are processed again")
                self._warned = True
            return self.run
        if self._idempotent is None:
            self._idempotent = self._build()
        self._config.register_lambda_context(context)  # in-flight locks expire with this invocation
        wrapped = self._idempotent
        return lambda job: wrapped(job=job.to_dict())

    def _build(self) -> Callable[..., Summary]:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        persistence = DynamoDBPersistenceLayer(table_name=self.settings.idempotency_table, boto3_client=aws.client("dynamodb"))
        self._config = IdempotencyConfig(
            event_key_jmespath="idempotency_key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=self.settings.idempotency_ttl_s,
        )

        @idempotent_function(data_keyword_argument="job", persistence_store=persistence, config=self._config)
        def run(job: dict[str, Any]) -> Summary:
            return self.run(Job.from_dict(job))

        return run
