"""Event-triggered work as one pipeline, one module per step:

==============  =====================================================================================
``job``         ``Job`` (one input in, exactly one result out), ``Settings``, the data bucket's layout
``inputs``      an input object decoded into requests, in bounded chunks (numpy)
``results``     the chunks' answers merged into one result, delivered to ``outbox/`` or ``errors/``
``runner``      ``JobRunner``: inputs -> ``Service.handle`` -> results, behind powertools idempotency
==============  =====================================================================================

Trigger adapters build jobs (``job``); the handler owns the runner. This face exports only ``job``'s names, so
importing the package stays light (no numpy, no powertools batch or idempotency utilities).
"""

from .job import ERRORS, FORMATS, INBOX, OUTBOX, REQUESTS, Job, RetryableJobError, S3Object, Settings

__all__ = ["ERRORS", "FORMATS", "INBOX", "OUTBOX", "REQUESTS", "Job", "RetryableJobError", "S3Object", "Settings"]
