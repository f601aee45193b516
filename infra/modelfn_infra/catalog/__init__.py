"""The model catalog (infra/catalog.yaml) and the SAM template rendered from it.

Adding a model is one catalog entry; ``modelfn template render`` writes template.yaml and
``modelfn template check`` (run by the tests) fails while the two drift apart.

One module per job, imported bottom-up (nothing imports a module above it):

    fields      catalog keys, types and value rules, derived from the records' dataclass fields; CatalogError
    ids         logical ids: the one naming rule, and the fixed ids (ModelApi, ServerFunction, UsageTable)
    schema      the records: ModelEntry, UsagePlanEntry, Catalog (read and validated)
    protection  model store, its KMS key, least-privilege reads, stage throttling, access logs, scan exceptions
    releases    live alias, CodeDeploy deployment and rollback alarms, SnapStart, layers, package types
    api         the REST API, its gateway responses and every route path
    functions   Globals, the catch-all function, one function per model
    events      data bucket, idempotency table, per-model queues and S3/SQS event sources
    metering    model functions' log groups, their subscription filters and the usage aggregator function
    usage       API keys, usage plans, the usage table, and (through metering) the aggregator's wiring (billing)
    auth        the auth: section's mode: AWS_IAM, a Cognito or Lambda (JWT) authorizer, their gateway responses
    readiness   the catch-all's probe of the model functions
    managed     Lambda Managed Instances (accelerator: gpu, capacity: managed): capacity provider, plain function,
                version and live alias, each event wired to the alias
    render      the template from all of the above; dump, render, drift

Adding a model key (e.g. ``accelerator: gpu``): one field on ``ModelEntry`` (``schema``), typed, with its default and
``setting(between=..., choices=...)``; rules that relate it to other keys in ``ModelEntry.validate``; one line in
infra/catalog.yaml's comments (a test checks every key is documented). It is then a known, type-checked key. Its
resources go in the module of their job, or in a new module (as ``managed``: capacity provider, ``AcceleratorConfig``)
whose ``(template, catalog)`` step joins ``render.PASSES``.

Adding a section (as ``auth:`` was): a record dataclass in ``schema`` (fields, ``where``, ``validate``: ``AuthSection``),
one field on ``Catalog`` (``auth: AuthSection = setting(factory=AuthSection)``; ``list[...]`` for a list of named
entries), and a new module (``auth``) whose step joins ``render.PASSES``. ``Catalog.read`` reads and checks it with no
other change.

Example:
    >>> catalog = Catalog.read("infra/catalog.yaml")                 # doctest: +SKIP
    >>> render_template(catalog)["Resources"]["DigitsFunction"]["Type"]  # doctest: +SKIP
    'AWS::Serverless::Function'
"""

from __future__ import annotations

from modelfn_runtime.modelcard import NAME_PATTERN, VERSION_PATTERN

from . import ids
from .api import ERROR_TEMPLATE, OPEN_EVENTS
from .auth import AUTH_ERRORS, AUTH_METADATA, SIGV4_SERVICE, add_auth
from .fields import CatalogError, known_keys
from .functions import FUNCTION_CODE
from .ids import logical_id
from .protection import ACCESS_LOG_FORMAT, STACK_KEY
from .releases import (
    IMAGE_CONTEXT,
    IMAGE_DOCKERFILE,
    LAMBDA_RUNTIME,
    LAYER_CODE,
    LIVE_ALIAS,
    alarm_logical_ids,
    apply_package_types,
    layer_logical_id,
    release_properties,
    release_resources,
)
from .render import HEADER, drift, dump_template, render_template, rendered
from .schema import (
    ARCHITECTURES,
    AUTH_MODES,
    DEPLOYMENT_TYPES,
    PACKAGE_TYPES,
    QUOTA_PERIODS,
    AuthSection,
    Catalog,
    ModelEntry,
    UsagePlanEntry,
)
from .usage import API_KEY_HEADER, GATEWAY_ERRORS, PLAN_TAG, USAGE_TABLE, add_billing, usage_table_resource

__all__ = [
    "ACCESS_LOG_FORMAT", "API_KEY_HEADER", "ARCHITECTURES", "AUTH_ERRORS", "AUTH_METADATA", "AUTH_MODES", "AuthSection",
    "SIGV4_SERVICE", "add_auth", "DEPLOYMENT_TYPES", "ERROR_TEMPLATE", "FUNCTION_CODE",
    "GATEWAY_ERRORS", "HEADER", "IMAGE_CONTEXT", "IMAGE_DOCKERFILE", "LAMBDA_RUNTIME", "LAYER_CODE", "LIVE_ALIAS",
    "NAME_PATTERN", "OPEN_EVENTS", "PACKAGE_TYPES", "PLAN_TAG", "QUOTA_PERIODS", "STACK_KEY", "USAGE_TABLE",
    "VERSION_PATTERN", "Catalog", "CatalogError", "ModelEntry", "UsagePlanEntry", "add_billing", "alarm_logical_ids",
    "apply_package_types", "drift", "dump_template", "ids", "known_keys", "layer_logical_id", "logical_id",
    "release_properties", "release_resources", "render_template", "rendered", "usage_table_resource",
]
