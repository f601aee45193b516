"""The catch-all function's share of the template: / and /openapi.json routes, the cards it may read (and
nothing else in the bucket), and a HEAD twin for every GET route."""

from __future__ import annotations

import yaml

from modelfn_infra.catalog import Catalog, ModelEntry, render_template

from ..conftest import REPO


def test_server_function_reads_exactly_the_card_keys():
    template = render_template(Catalog([ModelEntry("digits", "1"), ModelEntry("mobile-net", "3")]))
    server = template["Resources"]["ServerFunction"]["Properties"]
    assert server["Events"]["Root"]["Properties"]["Path"] == "/"
    uris = server["Environment"]["Variables"]["MODELFN_CARD_URIS"]["Fn::Sub"]
    assert uris == "s3://${ModelBucket}/${ModelPrefix}digits/1/,s3://${ModelBucket}/${ModelPrefix}mobile-net/3/"
    (statement,) = server["Policies"][0]["Statement"]
    assert statement["Action"] == "s3:GetObject"
    assert [r["Fn::Sub"] for r in statement["Resource"]] == [
        "arn:${AWS::Partition}:s3:::${ModelBucket}/${ModelPrefix}digits/1/modelcard.json",
        "arn:${AWS::Partition}:s3:::${ModelBucket}/${ModelPrefix}mobile-net/3/modelcard.json",
    ]


def test_every_get_route_has_a_head_twin():
    template = yaml.safe_load((REPO / "template.yaml").read_text())
    for resource in template["Resources"].values():
        events = [e["Properties"] for e in resource.get("Properties", {}).get("Events", {}).values() if e["Type"] == "Api"]
        gets = {e["Path"] for e in events if e["Method"] == "GET"}
        heads = {e["Path"] for e in events if e["Method"] == "HEAD"}
        assert gets == heads


def test_an_empty_catalog_still_serves_the_playground_without_s3_access():
    server = render_template(Catalog([]))["Resources"]["ServerFunction"]["Properties"]
    assert "Root" in server["Events"] and "Policies" not in server
