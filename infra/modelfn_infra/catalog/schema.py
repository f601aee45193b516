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
from modelfn_runtime.providers import GIB, estimated_gpu_bytes
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
ACCELERATORS = ("none", "gpu")
CAPACITIES = ("lambda", "managed")
"""``lambda``: Lambda's own per-request capacity; ``managed``: Lambda Managed Instances (a capacity provider of EC2
instances in the account; ``accelerator: gpu`` always runs there)."""
ACCELERATOR_MEMORY_GIB = (3, 6, 12, 16, 24, 48)
"""``AcceleratorConfig.AcceleratorMemorySize``: GiB per GPU device, a minimum (CloudFormation, November 2026)."""
MEMORY_GIB_PER_VCPU = (2, 4, 8)
"""``CapacityProviderConfig.ExecutionEnvironmentMemoryGiBPerVCpu`` as AWS documents it."""
GPU_DEVICE_MEMORY_GIB = {"g4dn": 16, "g5": 24, "g6": 24, "gr6": 24, "g6e": 48, "p4d": 40, "p4de": 80, "p5": 80, "p5e": 141}
"""Memory of one GPU of each EC2 family (T4, A10G, L4, L4, L40S, A100 40/80 GB, H100, H200): what
``accelerator_memory_gib`` must not exceed on every allowed instance type."""
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
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
    accelerator: str = setting("none", choices=ACCELERATORS)
    capacity: str = setting("lambda", choices=CAPACITIES, note="(accelerator: gpu runs on managed capacity)")
    accelerator_memory_gib: int | None = None
    instance_types: list[str] = setting(factory=list)
    min_environments: int = setting(3, between=(0, 15000), note="(AWS keeps three for AZ resilience by default)")
    max_environments: int = setting(6, between=(1, 15000))
    environment_concurrency: int = setting(1, between=(1, 1600), note="(requests, each its own process, per environment)")
    memory_gib_per_vcpu: int = 4
    scaling_target_percent: float = setting(60.0, between=(1, 100), note="(GPU utilization for gpu, else CPU)")
    model_size_mb: float | None = None

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
        self._validate_capacity()

    @property
    def managed(self) -> bool:
        """True when this model runs on Lambda Managed Instances (``capacity: managed`` or ``accelerator: gpu``)."""
        return self.capacity == "managed" or self.accelerator == "gpu"

    def _validate_capacity(self) -> None:
        """The managed-instance keys: where they apply, and what AWS and the GPU's memory allow."""
        where = self.where
        if not isinstance(self.instance_types, list) or not all(isinstance(t, str) and INSTANCE_TYPE.fullmatch(t)
                                                                 for t in self.instance_types):
            raise CatalogError(f"{where}: instance_types must be a list of EC2 instance types such as [g6.xlarge, g6.2xlarge]")
        if not self.managed:
            stray = [key for key in ("accelerator_memory_gib", "model_size_mb") if getattr(self, key) is not None]
            stray += ["instance_types"] if self.instance_types else []
            if stray:
                raise CatalogError(f"{where}: {', '.join(stray)} apply only to managed capacity; add accelerator: gpu "
                                   "(or capacity: managed for CPU) or remove them")
            return
        why = "accelerator: gpu" if self.accelerator == "gpu" else "capacity: managed"
        if self.package_type != "Image":
            raise CatalogError(f"{where}: {why} runs container images only (Python 3.13 on Lambda Managed Instances); "
                               "set package_type: Image and snapstart: false")
        if self.deployment != "AllAtOnce":
            raise CatalogError(f"{where}: {why} switches the live alias to each new version at once (no CodeDeploy "
                               "traffic shifting on managed capacity here); set deployment: AllAtOnce")
        if self.memory_gib_per_vcpu not in MEMORY_GIB_PER_VCPU:
            raise CatalogError(f"{where}: memory_gib_per_vcpu must be one of {', '.join(map(str, MEMORY_GIB_PER_VCPU))}")
        if self.min_environments > self.max_environments:
            raise CatalogError(f"{where}: min_environments ({self.min_environments}) must not exceed max_environments "
                               f"({self.max_environments})")
        if self.accelerator == "gpu":
            self._validate_gpu()
        elif self.accelerator_memory_gib is not None:
            raise CatalogError(f"{where}: accelerator_memory_gib applies only with accelerator: gpu; remove it or add that")

    def _validate_gpu(self) -> None:
        where = self.where
        if self.architecture != "x86_64":
            raise CatalogError(f"{where}: Lambda attaches GPUs to x86_64 functions only; set architecture: x86_64")
        if self.accelerator_memory_gib not in ACCELERATOR_MEMORY_GIB:
            raise CatalogError(f"{where}: accelerator: gpu needs accelerator_memory_gib, one of "
                               f"{', '.join(map(str, ACCELERATOR_MEMORY_GIB))} (GiB per GPU, a minimum)")
        for instance_type in self.instance_types:
            family = instance_type.split(".")[0]
            if family not in GPU_DEVICE_MEMORY_GIB:
                raise CatalogError(f"{where}: {instance_type} is not a GPU instance type modelfn knows; use one of the "
                                   f"families {', '.join(GPU_DEVICE_MEMORY_GIB)} (e.g. g6.xlarge)")
            if GPU_DEVICE_MEMORY_GIB[family] < self.accelerator_memory_gib:
                raise CatalogError(f"{where}: {instance_type}'s GPU has {GPU_DEVICE_MEMORY_GIB[family]} GiB, less than "
                                   f"accelerator_memory_gib {self.accelerator_memory_gib}; lower it or allow larger types")
        if self.model_size_mb is None or not self.model_size_mb > 0:
            raise CatalogError(f"{where}: accelerator: gpu needs model_size_mb (model.onnx's size: the card's "
                               "artifact.bytes / 1e6) to check that environment_concurrency processes fit the GPU")
        per_process = estimated_gpu_bytes(int(self.model_size_mb * 1e6))
        budget = self.accelerator_memory_gib * GIB
        if self.environment_concurrency * per_process > budget:
            fits = budget // per_process
            fix = f"set environment_concurrency to at most {fits} or raise it" if fits else "raise it"
            raise CatalogError(
                f"{where}: {self.environment_concurrency} processes x ~{per_process / GIB:.2f} GiB of GPU memory each "
                f"(a {self.model_size_mb:g} MB model, estimated as modelfn_runtime.providers.estimated_gpu_bytes) do not fit "
                f"accelerator_memory_gib {self.accelerator_memory_gib}; {fix} (largest: 48)"
            )


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
