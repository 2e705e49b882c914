"""DynamoDB: isolation and transactions, items, expressions, updates and serialization."""

from localcloud.services.dynamodb.expressions import (
    expression_trees_copied_directly,
    expressions_parsed_once,
)
from localcloud.services.dynamodb.items import (
    items_built_once_with_shared_strings,
    query_reads_its_partition,
)
from localcloud.services.dynamodb.serialization import attribute_values_as_sent
from localcloud.services.dynamodb.transactions import isolate_transactions
from localcloud.services.dynamodb.updates import (
    simple_updates_applied_directly,
    update_copies_only_for_streams,
)

__all__ = [
    "attribute_values_as_sent",
    "expression_trees_copied_directly",
    "expressions_parsed_once",
    "isolate_transactions",
    "items_built_once_with_shared_strings",
    "query_reads_its_partition",
    "simple_updates_applied_directly",
    "update_copies_only_for_streams",
]
