"""The audit log is append-only: every writer puts entries with ``attribute_not_exists`` (the
``audit_log_is_insert_only`` fixture watches every write of every functional test), and the
workflow's own writes are too."""

from __future__ import annotations

from payments import env

from lib.workflow_definition import batch_workflow_definition


def test_the_guard_sees_an_overwrite_an_update_a_delete_and_a_batch_write(
    world, audit_log_is_insert_only
):
    table = world.env[env.AUDIT_LOG_TABLE]
    entry = {"entity_id": {"S": "PAYMENT#p"}, "sk": {"S": "0001#RECEIVED"}}
    world.dynamodb.put_item(
        TableName=table, Item=entry, ConditionExpression="attribute_not_exists(entity_id)"
    )
    assert audit_log_is_insert_only == []
    world.dynamodb.put_item(TableName=table, Item={**entry, "at": {"S": "rewritten"}})
    world.dynamodb.update_item(
        TableName=table,
        Key=entry,
        UpdateExpression="SET #a = :a",
        ExpressionAttributeNames={"#a": "at"},
        ExpressionAttributeValues={":a": {"S": "x"}},
    )
    world.dynamodb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": entry}}]})
    world.dynamodb.delete_item(TableName=table, Key=entry)
    seen = [v.split(":")[0] for v in audit_log_is_insert_only]
    assert seen == ["put_item", "update_item", "put_item", "delete_item"], seen
    audit_log_is_insert_only.clear()  # the violations were this test's own


def test_every_write_of_the_workflow_to_the_audit_log_is_an_insert():
    definition = batch_workflow_definition(
        tasks_function_arn="fn", status_table_name="status", audit_table_name="audit"
    )
    writes = []
    for state in definition["States"].values():
        for item in state.get("Parameters", {}).get("TransactItems", []):
            (kind, op) = next(iter(item.items()))
            if op["TableName"] == "audit":
                writes.append((kind, op.get("ConditionExpression")))
        if state.get("Parameters", {}).get("TableName") == "audit":
            writes.append((state["Resource"], None))
    assert writes == [("Put", "attribute_not_exists(entity_id)")]
