"""Tenants: API keys on the template's usage plans (moto API Gateway), and the local API's tenants file."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from modelfn_infra.catalog import PLAN_TAG, Catalog
from modelfn_infra.cli import main
from modelfn_infra.tenants import ApiGatewayTenants, LocalTenants, TenantError

from ..conftest import REPO

STACK = "shop"


def deploy_plans(client, stack: str = STACK) -> dict[str, str]:
    """The usage plans CloudFormation creates from the template: <stack>-<plan>, tagged with the plan."""
    api = client.create_rest_api(name=f"{stack}-models")["id"]
    plans = {}
    for plan in Catalog.read(REPO / "infra" / "catalog.yaml").plans:
        created = client.create_usage_plan(
            name=f"{stack}-{plan.name}",
            apiStages=[{"apiId": api, "stage": "Prod"}],
            throttle={"rateLimit": plan.rate_limit, "burstLimit": plan.burst_limit},
            quota={"limit": plan.quota, "period": plan.quota_period},
            tags={PLAN_TAG: plan.name},
        )
        plans[plan.name] = created["id"]
    client.create_usage_plan(name="other-stack-free", tags={PLAN_TAG: "free"})  # another stack's plan: ignored
    return plans


@pytest.fixture
def apigateway():
    with mock_aws():
        client = boto3.client("apigateway", region_name="us-east-1")
        yield client, deploy_plans(client)


def plan_keys(client, plan_id: str) -> list[str]:
    return [key["id"] for key in client.get_usage_plan_keys(usagePlanId=plan_id)["items"]]


def test_create_attaches_a_new_key_to_the_plan_and_returns_its_value_once(apigateway):
    client, plans = apigateway
    tenants = ApiGatewayTenants(stack=STACK, client=client)
    assert tenants.plans() == ["free", "pro"]
    acme = tenants.create("acme", plan="pro")
    assert acme.enabled and acme.plan == "pro" and len(acme.key) >= 20
    assert plan_keys(client, plans["pro"]) == [acme.id] and plan_keys(client, plans["free"]) == []
    assert client.get_api_key(apiKey=acme.id, includeValue=True)["value"] == acme.key
    listed = tenants.list()
    assert [(t.name, t.id, t.plan, t.enabled, t.key) for t in listed] == [("acme", acme.id, "pro", True, None)]


def test_create_refuses_unknown_plans_bad_names_and_duplicates(apigateway):
    client, _ = apigateway
    tenants = ApiGatewayTenants(stack=STACK, client=client)
    with pytest.raises(TenantError, match=r"plan 'gold' does not exist in stack 'shop'; choose one of \['free', 'pro'\]"):
        tenants.create("acme", plan="gold")
    with pytest.raises(TenantError, match="tenant name 'a b' is not valid"):
        tenants.create("a b", plan="free")
    first = tenants.create("acme", plan="free")
    with pytest.raises(TenantError, match=f"tenant 'acme' already exists \\(id {first.id}\\); revoke it first"):
        tenants.create("acme", plan="pro")
    assert len(client.get_api_keys()["items"]) == 1


def test_revoke_detaches_and_disables_but_keeps_the_key_for_the_bill(apigateway):
    client, plans = apigateway
    tenants = ApiGatewayTenants(stack=STACK, client=client)
    acme = tenants.create("acme", plan="free")
    tenants.create("globex", plan="pro")
    revoked = tenants.revoke("acme")
    assert revoked.id == acme.id and not revoked.enabled
    assert plan_keys(client, plans["free"]) == []
    assert client.get_api_key(apiKey=acme.id)["enabled"] is False
    assert {(t.name, t.enabled) for t in tenants.list()} == {("acme", False), ("globex", True)}
    again = tenants.create("acme", plan="pro")  # the name is free again; the old key keeps its id
    assert again.id != acme.id and plan_keys(client, plans["pro"]).count(again.id) == 1
    with pytest.raises(TenantError, match="no tenant named 'nobody'"):
        tenants.revoke("nobody")


def test_keys_of_other_stacks_are_not_listed(apigateway):
    client, _ = apigateway
    client.create_api_key(name="stranger", enabled=True)
    ApiGatewayTenants(stack=STACK, client=client).create("acme", plan="free")
    assert [t.name for t in ApiGatewayTenants(stack=STACK, client=client).list()] == ["acme"]
    assert ApiGatewayTenants(stack="elsewhere", client=client).list() == []


def test_cli_tenants_create_list_revoke(apigateway, capsys):
    client, plans = apigateway
    assert main(["tenants", "create", "acme", "--plan", "pro", "--stack", STACK]) == 0
    out = capsys.readouterr().out
    key = out.split("API key (shown once; give it to the tenant): ")[1].split()[0]
    tenant_id = client.get_api_keys()["items"][0]["id"]
    assert client.get_api_key(apiKey=tenant_id, includeValue=True)["value"] == key
    assert f"x-api-key: {key}" in out and plan_keys(client, plans["pro"]) == [tenant_id]
    assert main(["tenants", "list", "--stack", STACK, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"id": tenant_id, "name": "acme", "plan": "pro", "enabled": True, "created": listed[0]["created"],
                       "principal": None, "expires": None, "key_age_days": 0}]
    assert key not in json.dumps(listed)
    assert main(["tenants", "revoke", "acme", "--stack", STACK]) == 0
    assert "revoked tenant acme" in capsys.readouterr().out
    assert main(["tenants", "create", "x", "--plan", "gold", "--stack", STACK]) == 2
    assert "choose one of ['free', 'pro']" in capsys.readouterr().err


def test_local_tenants_file(tmp_path):
    path = tmp_path / "local" / "tenants.json"
    tenants = LocalTenants(path, plans=["free", "pro"])
    acme = tenants.create("acme", "free")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds key digests and local SigV4 secrets
    assert acme.key not in path.read_text()  # only a salted digest is kept
    assert tenants.match_key(acme.key) == replace(acme, key=None) and tenants.match_key("wrong") is None
    assert [t.key for t in tenants.list()] == [None]
    with pytest.raises(TenantError, match="plan 'gold' is not in the template"):
        tenants.create("globex", "gold")
    tenants.revoke(acme.id)
    assert tenants.match_key(acme.key) is None and tenants.list()[0].enabled is False
    path.write_text("not json")
    with pytest.raises(TenantError, match="is not a tenants file"):
        tenants.list()


def test_cli_local_tenants_take_plans_from_the_template(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    path = tmp_path / "tenants.json"
    assert main(["tenants", "create", "dev", "--plan", "free", "--local", "--tenants", str(path)]) == 0
    key = capsys.readouterr().out.split("shown once; give it to the tenant): ")[1].split()[0]
    assert LocalTenants(path).match_key(key).name == "dev"
    assert main(["tenants", "create", "dev2", "--plan", "gold", "--local", "--tenants", str(path)]) == 2
    assert "choose one of ['free', 'pro']" in capsys.readouterr().err


def test_rotate_issues_a_new_key_keeps_the_old_one_for_the_grace_then_sweep_revokes_it(apigateway):
    client, plans = apigateway
    clock = [datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)]
    tenants = ApiGatewayTenants(stack=STACK, client=client, now=lambda: clock[0])
    old = tenants.create("acme", "pro", principal="arn:aws:iam::123456789012:role/acme")
    new, retired = tenants.rotate("acme", grace_hours=2)
    assert new.key and new.key != old.key and new.principal == old.principal and retired.expires == "2026-12-01T14:00:00Z"
    assert sorted(plan_keys(client, plans["pro"])) == sorted([old.id, new.id])  # both pass during the grace
    assert tenants.sweep() == []
    clock[0] += timedelta(hours=3)
    assert [t.id for t in tenants.sweep()] == [old.id]
    assert plan_keys(client, plans["pro"]) == [new.id]
    assert {t.id: t.enabled for t in tenants.list()} == {old.id: False, new.id: True}
    with pytest.raises(TenantError, match="between 0"):
        tenants.rotate("acme", grace_hours=-1)


def test_local_rotation_grace_hashing_and_an_older_clear_text_file(tmp_path):
    clock = [datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)]
    path = tmp_path / "tenants.json"
    tenants = LocalTenants(path, plans=["free"], now=lambda: clock[0])
    old = tenants.create("acme", "free")
    new, retired = tenants.rotate("acme", grace_hours=1)
    assert tenants.match_key(old.key).id == old.id and tenants.match_key(new.key).id == new.id  # within the grace
    clock[0] += timedelta(hours=2)
    assert tenants.match_key(old.key) is None and tenants.match_key(new.key).id == new.id  # rotated out
    assert [t.id for t in tenants.list() if not t.enabled] == [old.id]  # list sweeps it
    assert tenants.sigv4_credentials("acme").access_key_id.startswith("AKIA")  # SigV4 credentials survive rotation
    legacy = tmp_path / "legacy.json"  # what an older modelfn wrote: keys in clear
    legacy.write_text(json.dumps({"tenants": [{"id": "k1", "name": "bob", "plan": "free", "enabled": True,
                                               "created": "2026-01-01T00:00:00Z", "key": "clear-key-value"}]}))
    assert LocalTenants(legacy, ["free"]).match_key("clear-key-value").name == "bob"
    assert "clear-key-value" not in legacy.read_text()  # rewritten hashed the first time it was read


def test_cli_rotate_and_list_show_the_new_key_once_and_key_age(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    path = tmp_path / "tenants.json"
    local = ["--local", "--tenants", str(path)]
    assert main(["tenants", "create", "dev", "--plan", "free", *local]) == 0
    capsys.readouterr()
    assert main(["tenants", "rotate", "dev", "--grace-hours", "0", *local]) == 0
    out = capsys.readouterr().out
    key = out.split("new API key (shown once; give it to the tenant): ")[1].split()[0]
    assert "is revoked now" in out and LocalTenants(path).match_key(key).name == "dev"
    assert main(["tenants", "list", *local]) == 0
    assert "key age" in capsys.readouterr().out
    assert main(["tenants", "token", "dev", *local]) == 2  # the repository's template is api_key mode
    assert "not jwt" in capsys.readouterr().err
