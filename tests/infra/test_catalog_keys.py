"""Every catalog key is known from the records' fields: unknown keys, missing keys and wrong types are refused with a
message that names the key, the closest known one and the fix, never a Python TypeError."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import pytest

from modelfn_infra.catalog import AuthSection, Catalog, CatalogError, ModelEntry, UsagePlanEntry, known_keys
from modelfn_infra.catalog.fields import read_record, setting

from ..conftest import REPO

PLANS = "usage_plans:\n  - name: free\n    rate_limit: 1\n    burst_limit: 1\n"
MODEL = "models:\n  - name: digits\n    version: '1'\n"


@dataclass(frozen=True)
class Auth:
    """A stand-in for a future ``auth:`` section (one mapping)."""

    mode: str = setting("iam", choices=("iam", "jwt"))
    issuer: str = ""

    @property
    def where(self) -> str:
        return "auth"


@dataclass(frozen=True)
class Root:
    """A catalog with that section: one more field."""

    models: list[ModelEntry] = setting(factory=list)
    auth: Auth | None = None

    @property
    def where(self) -> str:
        return "catalog"


def read(tmp_path, text: str) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return Catalog.read(path)


def refused(tmp_path, text: str) -> str:
    with pytest.raises(CatalogError) as error:
        read(tmp_path, text)
    return str(error.value)


def test_known_keys_are_the_dataclass_fields():
    assert known_keys(ModelEntry) == [item.name for item in dataclasses.fields(ModelEntry)]
    assert known_keys(UsagePlanEntry) == [item.name for item in dataclasses.fields(UsagePlanEntry)]
    assert known_keys(Catalog) == ["models", "usage_plans", "auth"]


def test_a_misspelt_model_key_names_the_closest_known_key(tmp_path):
    message = refused(tmp_path, MODEL + "    memroy_mb: 2048\n")
    assert message.startswith("catalog entry 'digits': unknown key 'memroy_mb'; did you mean 'memory_mb'? known keys: name, version,")
    assert all(key in message for key in known_keys(ModelEntry))


def test_a_misspelt_section_is_refused_not_ignored(tmp_path):
    message = refused(tmp_path, MODEL + "usage_plan:\n  - name: free\n    rate_limit: 1\n    burst_limit: 1\n")
    assert re.search(r"catalog \S+catalog.yaml: unknown key 'usage_plan'; did you mean 'usage_plans'\? "
                     r"known keys: models, usage_plans, auth$", message)
    assert "did you mean" not in refused(tmp_path, MODEL + "zzz: {}\n")


def test_the_auth_section_is_read_checked_and_names_the_fix(tmp_path):
    assert read(tmp_path, MODEL).auth == AuthSection()  # absent: api_key, today's behaviour
    auth = read(tmp_path, MODEL + "auth:\n  mode: jwt\n  issuer: https://auth.example.com/\n  audience: models\n").auth
    assert (auth.mode, auth.tenant_claim, auth.jwks) == ("jwt", "sub", "https://auth.example.com/.well-known/jwks.json")
    assert "section 'auth': unknown key 'isuer'; did you mean 'issuer'" in refused(tmp_path, MODEL + "auth:\n  isuer: x\n")
    assert "did you mean 'auth'" in refused(tmp_path, MODEL + "auht:\n  mode: iam\n")
    assert "mode must be one of api_key, iam, jwt" in refused(tmp_path, MODEL + "auth:\n  mode: oauth\n")
    assert "mode: jwt needs issuer" in refused(tmp_path, MODEL + "auth:\n  mode: jwt\n  audience: models\n")
    assert "issuer only applies to mode: jwt" in refused(tmp_path, MODEL + "auth:\n  mode: iam\n  issuer: https://x/\n")
    assert "must be an https:// URL" in refused(tmp_path, MODEL + "auth:\n  mode: jwt\n  issuer: http://x/\n  audience: a\n")
    assert "Cognito user pool ARN" in refused(
        tmp_path, MODEL + "auth:\n  mode: jwt\n  issuer: https://x/\n  audience: a\n  user_pool_arn: pool-1\n")


def test_a_misspelt_plan_key_names_the_closest_known_key(tmp_path):
    message = refused(tmp_path, PLANS + "    rate_limt: 2\n" + MODEL)
    assert message.startswith("usage plan 'free': unknown key 'rate_limt'; did you mean 'rate_limit'? known keys: name, rate_limit,")


@pytest.mark.parametrize(
    "line,message",
    [
        ("memory_mb: big", "catalog entry 'digits': memory_mb must be an integer such as 1024; got 'big'"),
        ("memory_mb: 1024.5", "memory_mb must be an integer such as 1024; got 1024.5"),
        ("memory_mb: true", "memory_mb must be an integer such as 1024; got True"),
        ("snapstart: 'no'", "snapstart must be true or false; got 'no'"),
        ("reserved_concurrency: lots", "reserved_concurrency must be an integer such as 10, or null; got 'lots'"),
        ("architecture: 64", "architecture must be text such as 'x86_64'; got 64"),
        ("version: 1.5", "version must be text or an integer; got 1.5"),
        ("payload_log_rate: often", "payload_log_rate must be a number such as 0.0; got 'often'"),
        ("alarm_error_rate_percent: [5]", "alarm_error_rate_percent must be a number such as 5.0; got a list"),
        ("deployment: {type: AllAtOnce}", "deployment must be text such as 'Canary10Percent5Minutes'; got a mapping"),
        ("payload_log_rate: 2", "payload_log_rate must be between 0 and 1 (0, the default: never)"),
        ("deployment: Sideways", "deployment must be one of AllAtOnce, Canary10Percent5Minutes,"),
    ],
)
def test_wrong_model_values_name_the_key_and_the_type(tmp_path, line, message):
    text = "models:\n  - name: digits\n" + ("" if line.startswith("version") else "    version: '1'\n") + f"    {line}\n"
    assert message in refused(tmp_path, text)


@pytest.mark.parametrize(
    "line,message",
    [
        ("rate_limit: fast", "usage plan 'free': rate_limit must be a number; got 'fast'"),
        ("quota: 1.5", "quota must be an integer, or null; got 1.5"),
        ("description: 7", "description must be text; got 7"),
    ],
)
def test_wrong_plan_values_name_the_key_and_the_type(tmp_path, line, message):
    text = PLANS.replace("    rate_limit: 1\n", "") if line.startswith("rate_limit") else PLANS
    assert message in refused(tmp_path, text + f"    {line}\n" + MODEL)


@pytest.mark.parametrize("field", [item.name for item in dataclasses.fields(ModelEntry)])
@pytest.mark.parametrize("value", ["[1, 2]", "{a: 1}", "'text'", "7", "2.5", "true", "null"])
def test_no_value_of_any_model_key_escapes_as_a_python_error(tmp_path, field, value):
    """Whatever a key holds, the catalog either reads it or answers CatalogError: never TypeError or AttributeError."""
    entry = {"name": "digits", "version": "'1'", field: value}
    text = "models:\n  - " + "\n    ".join(f"{key}: {raw}" for key, raw in entry.items()) + "\n"
    try:
        read(tmp_path, text)
    except CatalogError as error:
        assert field in str(error) or "name must match" in str(error) or "version must be" in str(error)


@pytest.mark.parametrize(
    "text,message",
    [
        ("models:\n  digits:\n    version: '1'\n", "models must be a list of entries (- name: ...), not a mapping"),
        ("models:\n  - digits\n", "catalog entry #1: must be a mapping of keys (name, version,"),
        ("models:\n  - version: '1'\n", "catalog entry #1: missing key 'name' (required keys: name, version)"),
        ("models:\n  - name: digits\n", "catalog entry 'digits': missing key 'version' (required keys: name, version)"),
        ("- models\n", "must be a mapping of keys (models, usage_plans, auth), not a list"),
        ("models: [\n", "is not valid YAML"),
    ],
)
def test_malformed_catalogs_name_the_fix(tmp_path, text, message):
    assert message in refused(tmp_path, text)


def test_an_integer_version_and_empty_sections_still_read(tmp_path):
    catalog = read(tmp_path, "usage_plans:\nmodels:\n  - name: digits\n    version: 3\n")
    assert catalog.models[0].version == "3" and catalog.plans == []
    assert read(tmp_path, "").models == []


def test_a_new_field_is_a_known_typed_key_at_once():
    """What adding `accelerator: gpu` to ModelEntry will be: one field, read and checked with no other change."""

    @dataclass(frozen=True)
    class Entry:
        LABEL = "catalog entry"
        name: str
        accelerator: str = setting("cpu", choices=("cpu", "gpu"))

        @property
        def where(self) -> str:
            return f"catalog entry {self.name!r}"

    assert read_record(Entry, {"name": "digits", "accelerator": "gpu"}, "catalog entry 'digits'").accelerator == "gpu"
    with pytest.raises(CatalogError, match="unknown key 'acelerator'; did you mean 'accelerator'"):
        read_record(Entry, {"name": "digits", "acelerator": "gpu"}, "catalog entry 'digits'")
    with pytest.raises(CatalogError, match="accelerator must be one of cpu, gpu"):
        read_record(Entry, {"name": "digits", "accelerator": "tpu"}, "catalog entry 'digits'")


def test_a_new_section_is_one_field():
    """What adding an `auth:` section will be: a record and one field on the catalog, its keys checked the same way."""

    assert read_record(Root, {"auth": {"mode": "jwt"}}, "catalog c.yaml").auth == Auth("jwt")
    assert read_record(Root, {"auth": None}, "catalog c.yaml").auth is None
    with pytest.raises(CatalogError, match="catalog c.yaml: section 'auth': unknown key 'isuer'; did you mean 'issuer'"):
        read_record(Root, {"auth": {"isuer": "x"}}, "catalog c.yaml")
    with pytest.raises(CatalogError, match="section 'auth': must be a mapping of keys"):
        read_record(Root, {"auth": "jwt"}, "catalog c.yaml")
    with pytest.raises(CatalogError, match="mode must be one of iam, jwt"):
        read_record(Root, {"auth": {"mode": "basic"}}, "catalog c.yaml")


def test_the_catalog_documents_every_key():
    """infra/catalog.yaml's comments list every model and plan key, so a new field is documented where users look."""
    comments = "\n".join(line for line in (REPO / "infra" / "catalog.yaml").read_text().splitlines() if line.startswith("#"))
    documented = known_keys(ModelEntry) + known_keys(UsagePlanEntry) + known_keys(AuthSection)
    missing = [key for key in documented if not re.search(rf"\b{key}\b", comments)]
    assert missing == []
