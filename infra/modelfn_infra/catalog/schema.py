"""The catalog's records (infra/catalog.yaml) and their rules: one dataclass per entry kind, one field per key.

Each field is a YAML key: its type is checked from the annotation and its range or choices from ``setting()``
(``fields``), so a new field is known, typed and documented in one line. Rules that relate fields live in each
record's ``validate()``. ``Catalog.read`` refuses unknown keys anywhere, naming the closest known key.

Example:
    >>> catalog = Catalog.read("infra/catalog.yaml")                  # doctest: +SKIP
    >>> catalog.models[0].logical_id, catalog.plans[0].logical_id     # doctest: +SKIP
    ('DigitsFunction', 'UsagePlanFree')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml

from modelfn_runtime.modelcard import NAME_PATTERN, VERSION_PATTERN
from modelfn_runtime.validation import DEFAULT_MAX_BATCH_SIZE

from .fields import CatalogError, check_fields, read_record, setting
from .ids import logical_id

ARCHITECTURES = ("x86_64", "arm64")
PACKAGE_TYPES = ("Zip", "Image")
DEPLOYMENT_TYPES = (
    "AllAtOnce",
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
)
"""CodeDeploy's predefined Lambda deployment configurations, as SAM's ``DeploymentPreference.Type`` names them."""
QUOTA_PERIODS = ("DAY", "WEEK", "MONTH")
AUTH_MODES = ("api_key", "iam", "jwt")
USER_POOL_ARN = re.compile(r"arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/[\w-]+_[0-9A-Za-z]+")
CLAIM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_:.-]{0,63}")
NAME_RULE = f"name must match {NAME_PATTERN.pattern} (lower-case letters, digits, dashes)"


@dataclass(frozen=True)
class ModelEntry:
    """One model, one Lambda function: its size, its event sources, its packaging and its rollout."""

    LABEL: ClassVar[str] = "catalog entry"
    NOUN: ClassVar[str] = "model"

    name: str
    version: str = setting(text=True)
    memory_mb: int = setting(1024, between=(128, 10240))
    timeout_s: int = setting(10, between=(1, 900), note="(API Gateway answers within 29)")
    reserved_concurrency: int | None = 10
    architecture: str = setting("x86_64", choices=ARCHITECTURES)
    queue_batch_size: int = setting(10, between=(1, 10000), note="(SQS event source limit)")
    queue_batching_window_s: int = setting(0, between=(0, 300), note="seconds")
    max_receive_count: int = setting(3, between=(1, 1000), note="(receives before the dead-letter queue)")
    package_type: str = setting("Zip", choices=PACKAGE_TYPES)
    deployment: str = setting("Canary10Percent5Minutes", choices=DEPLOYMENT_TYPES)
    snapstart: bool = True
    alarm_error_rate_percent: float = 5.0
    alarm_p99_ms: int = 1000
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    payload_log_rate: float = setting(0.0, between=(0, 1), note="(0, the default: never)")

    @property
    def where(self) -> str:
        return f"{self.LABEL} {self.name!r}"

    @property
    def logical_id(self) -> str:
        return self.resource_id("Function")

    def resource_id(self, kind: str) -> str:
        """The logical id of this model's ``kind`` of resource: ``DigitsQueue``, ``DigitsLatencyAlarm``."""
        return logical_id(self.name, kind)

    @property
    def store_prefix(self) -> str:
        """This version's directory in the model store, as a template substitution (``${ModelPrefix}digits/1/``)."""
        return f"${{ModelPrefix}}{self.name}/{self.version}/"

    def validate(self) -> None:
        check_fields(self)
        where = self.where
        if not NAME_PATTERN.fullmatch(self.name):
            raise CatalogError(f"{where}: {NAME_RULE}")
        if not VERSION_PATTERN.fullmatch(self.version):
            raise CatalogError(f"{where}: version must be a positive integer such as \"1\"")
        if self.queue_batch_size > 10 and self.queue_batching_window_s < 1:
            raise CatalogError(f"{where}: a queue_batch_size over 10 needs queue_batching_window_s of at least 1 (Lambda's rule)")
        if self.snapstart and self.package_type == "Image":
            raise CatalogError(f"{where}: SnapStart works only for Zip functions; set snapstart: false for package_type: Image")
        if not 0 < self.alarm_error_rate_percent <= 100:
            raise CatalogError(f"{where}: alarm_error_rate_percent must be in (0, 100]")
        if not 1 <= self.alarm_p99_ms <= self.timeout_s * 1000:
            raise CatalogError(f"{where}: alarm_p99_ms must be between 1 and timeout_s * 1000 ({self.timeout_s * 1000})")
        if self.max_batch_size < 1:
            raise CatalogError(f"{where}: max_batch_size must be a positive integer such as 64")


@dataclass(frozen=True)
class UsagePlanEntry:
    """A tier of the API: per-key throttling (steady rate, burst) and an optional quota per period.

    The one plan record: the renderer writes it into usage plans, and the local API's key gate reads it back.
    """

    LABEL: ClassVar[str] = "usage plan"
    NOUN: ClassVar[str] = "usage plan"

    name: str
    rate_limit: float
    burst_limit: int
    quota: int | None = None
    quota_period: str = setting("MONTH", choices=QUOTA_PERIODS)
    description: str = ""

    @property
    def where(self) -> str:
        return f"{self.LABEL} {self.name!r}"

    @property
    def logical_id(self) -> str:
        return logical_id(self.name, prefix="UsagePlan")

    def validate(self) -> None:
        check_fields(self)
        where = self.where
        if not NAME_PATTERN.fullmatch(self.name):
            raise CatalogError(f"{where}: {NAME_RULE}")
        if not self.rate_limit > 0:
            raise CatalogError(f"{where}: rate_limit must be a positive number of requests per second")
        if not self.burst_limit >= 1:
            raise CatalogError(f"{where}: burst_limit must be a positive integer (requests at once)")
        if self.quota is not None and not self.quota >= 1:
            raise CatalogError(f"{where}: quota must be a positive integer of requests per quota_period, or omitted")


@dataclass(frozen=True)
class AuthSection:
    """Who may call the model routes: ``api_key`` (the default), ``iam`` (SigV4) or ``jwt`` (OAuth2/OIDC tokens).

    In every mode a tenant still has an API key on a usage plan (throttling, quotas, bills per tenant); ``iam`` and
    ``jwt`` add an authenticated identity that decides who the tenant is. ``catalog/auth.py`` renders it.

    Example:
        >>> AuthSection("jwt", issuer="https://auth.example.com/", audience="models").validate()
    """

    LABEL: ClassVar[str] = "auth"

    mode: str = setting("api_key", choices=AUTH_MODES)
    issuer: str | None = None
    audience: str | None = None
    user_pool_arn: str | None = None
    tenant_claim: str = "sub"
    jwks_uri: str | None = None

    @property
    def where(self) -> str:
        return "catalog section 'auth'"

    @property
    def jwks(self) -> str:
        """Where the issuer publishes its signing keys (``jwks_uri``, else ``<issuer>/.well-known/jwks.json``)."""
        return self.jwks_uri or f"{(self.issuer or '').rstrip('/')}/.well-known/jwks.json"

    def validate(self) -> None:
        check_fields(self)
        where = self.where
        jwt_keys = {"issuer": self.issuer, "audience": self.audience, "user_pool_arn": self.user_pool_arn,
                    "jwks_uri": self.jwks_uri}
        if self.mode != "jwt":
            given = [key for key, value in jwt_keys.items() if value is not None]
            if given or self.tenant_claim != "sub":
                raise CatalogError(f"{where}: {', '.join(given) or 'tenant_claim'} only applies to mode: jwt; "
                                   "remove it or set mode: jwt")
            return
        for key in ("issuer", "audience"):
            if not jwt_keys[key]:
                raise CatalogError(f"{where}: mode: jwt needs {key} (the token's iss and aud claims, "
                                   "e.g. issuer: https://auth.example.com/ and audience: models)")
        for key in ("issuer", "jwks_uri"):
            if jwt_keys[key] is not None and not str(jwt_keys[key]).startswith("https://"):
                raise CatalogError(f"{where}: {key} must be an https:// URL (the issuer's keys are fetched over TLS)")
        if self.user_pool_arn is not None and not USER_POOL_ARN.fullmatch(self.user_pool_arn):
            raise CatalogError(f"{where}: user_pool_arn must be a Cognito user pool ARN such as "
                               "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123")
        if not CLAIM_NAME.fullmatch(self.tenant_claim):
            raise CatalogError(f"{where}: tenant_claim must be a claim name such as sub or custom:tenant")


@dataclass(frozen=True)
class Catalog:
    """The whole catalog: one field per top-level section (``usage_plans`` is read into ``plans``)."""

    models: list[ModelEntry] = setting(factory=list)
    plans: list[UsagePlanEntry] = setting(factory=list, key="usage_plans")
    auth: AuthSection = setting(factory=AuthSection)

    @property
    def where(self) -> str:
        return "catalog"

    @classmethod
    def read(cls, path: str | Path) -> "Catalog":
        try:
            data = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as error:
            raise CatalogError(f"{path} is not valid YAML: {error}") from None
        return read_record(cls, {} if data is None else data, f"catalog {path}")
