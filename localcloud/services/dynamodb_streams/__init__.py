"""DynamoDB Streams: the records a shard holds, the Streams API over them, and the poller."""

from localcloud.services.dynamodb_streams.api import records_kept_for_their_readers

__all__ = ["records_kept_for_their_readers"]
