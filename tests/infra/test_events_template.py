"""The event-triggered resources of template.yaml: rendered per model from the catalog, least privilege."""

from __future__ import annotations

import json

import pytest

from modelfn_infra.catalog import Catalog, CatalogError, ModelEntry, render_template
from modelfn_infra.catalog.events import DATA_BUCKET_NAME

from ..conftest import REPO


@pytest.fixture(scope="module")
def template() -> dict:
    catalog = Catalog([ModelEntry("digits", "1", timeout_s=10, queue_batch_size=50, queue_batching_window_s=2, max_receive_count=5),
                       ModelEntry("text-cls", "2")])
    return render_template(catalog)


def test_each_model_has_a_queue_with_a_dead_letter_queue(template):
    resources = template["Resources"]
    queue = resources["DigitsQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["DigitsDeadLetterQueue", "Arn"]}, "maxReceiveCount": 5}
    assert queue["VisibilityTimeout"] == 60  # 6 x the 10 s function timeout
    assert resources["DigitsDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert {"TextClsQueue", "TextClsDeadLetterQueue", "TextClsAsyncResultsQueue"} <= set(resources)
    assert all(r["Properties"]["SqsManagedSseEnabled"] for r in resources.values() if r["Type"] == "AWS::SQS::Queue")


def test_event_sources_batching_and_partial_batch_responses(template):
    events = template["Resources"]["DigitsFunction"]["Properties"]["Events"]
    assert events["Queue"]["Properties"] == {
        "Queue": {"Fn::GetAtt": ["DigitsQueue", "Arn"]}, "BatchSize": 50, "MaximumBatchingWindowInSeconds": 2,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    inbox = events["Inbox"]["Properties"]
    assert inbox["Bucket"] == {"Ref": "DataBucket"} and inbox["Events"] == "s3:ObjectCreated:*"
    assert inbox["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "inbox/digits/"}]


def test_async_invokes_have_destinations(template):
    config = template["Resources"]["DigitsFunction"]["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["DigitsDeadLetterQueue", "Arn"]}
    assert config["DestinationConfig"]["OnSuccess"]["Destination"] == {"Fn::GetAtt": ["DigitsAsyncResultsQueue", "Arn"]}


def test_policies_reach_only_the_models_own_prefixes(template):
    properties = template["Resources"]["DigitsFunction"]["Properties"]
    statements = [s for p in properties["Policies"] if "Statement" in p for s in p["Statement"]]  # model + event policies
    by_sid = {s["Sid"]: s for s in statements}
    text = json.dumps(by_sid["ReadOwnInputs"]["Resource"])
    assert "/inbox/digits/*" in text and "/requests/digits/*" in text and "text-cls" not in text
    assert by_sid["ReadOwnInputs"]["Action"] == ["s3:GetObject"]
    written = json.dumps(by_sid["WriteOwnResults"]["Resource"])
    assert "/outbox/digits/*" in written and "/errors/digits/*" in written and "inbox" not in written
    assert by_sid["IdempotencyRecords"]["Resource"] == {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    assert "dynamodb:Scan" not in by_sid["IdempotencyRecords"]["Action"]
    variables = properties["Environment"]["Variables"]
    assert variables["MODELFN_DATA_BUCKET"] == DATA_BUCKET_NAME
    assert variables["MODELFN_IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}


def test_data_bucket_is_private_and_tls_only(template):
    resources = template["Resources"]
    bucket = resources["DataBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (statement,) = resources["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    table = resources["IdempotencyTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]  # powertools' default key attribute


def test_the_bucket_name_needs_no_ref_so_there_is_no_cycle(template):
    """A function policy naming the bucket by Ref while the bucket notifies the function is a circular dependency."""
    properties = template["Resources"]["DigitsFunction"]["Properties"]
    assert '"Ref": "DataBucket"' not in json.dumps(properties["Policies"])


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"queue_batch_size": 0}, "queue_batch_size must be between 1 and 10000"),
        ({"queue_batch_size": 100}, "needs queue_batching_window_s of at least 1"),
        ({"queue_batching_window_s": 301}, "between 0 and 300"),
        ({"max_receive_count": 0}, "max_receive_count must be between 1 and 1000"),
    ],
)
def test_catalog_refuses_bad_event_settings(tmp_path, fields, message):
    lines = "".join(f"    {key}: {value}\n" for key, value in fields.items())
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(f"models:\n  - name: digits\n    version: \"1\"\n{lines}")
    with pytest.raises(CatalogError, match=message):
        Catalog.read(catalog)


def test_rendered_template_has_the_event_resources():
    text = (REPO / "template.yaml").read_text()
    for name in ("DataBucket:", "IdempotencyTable:", "DigitsQueue:", "DigitsDeadLetterQueue:", "ReportBatchItemFailures"):
        assert name in text
