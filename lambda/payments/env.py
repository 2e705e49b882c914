"""Names of the environment variables the infrastructure hands to every function.

``lib/functions.py`` sets them and ``payments.config`` reads them; both import these names, so the
contract between the stack and the runtime is defined once.
"""

ENVIRONMENT = "ENVIRONMENT"
PAYMENTS_TABLE = "PAYMENTS_TABLE"
PROCESSING_STATUS_TABLE = "PROCESSING_STATUS_TABLE"
AUDIT_LOG_TABLE = "AUDIT_LOG_TABLE"
PROCESSING_QUEUE_URL = "PROCESSING_QUEUE_URL"
PAYMENT_EVENTS_TOPIC_ARN = "PAYMENT_EVENTS_TOPIC_ARN"
BATCH_BUCKET = "BATCH_BUCKET"
AUDIT_ARCHIVE_BUCKET = "AUDIT_ARCHIVE_BUCKET"
STATE_MACHINE_ARN = "STATE_MACHINE_ARN"
MAX_PAYMENT_AMOUNT = "MAX_PAYMENT_AMOUNT"
WEBHOOK_SECRET_PARAMETER = "WEBHOOK_SECRET_PARAMETER"  # noqa: S105 - a variable name
# Optional: how old (or how far ahead) a webhook signature's timestamp may be; default 300 s.
WEBHOOK_TOLERANCE_SECONDS = "WEBHOOK_TOLERANCE_SECONDS"
BATCH_CHUNK_ROWS = "BATCH_CHUNK_ROWS"
CORS_ALLOWED_ORIGIN = "CORS_ALLOWED_ORIGIN"
# The id of the deployment's own API key: the ``default`` client's (API only; payments.clients).
DEFAULT_API_KEY_ID = "DEFAULT_API_KEY_ID"
STUCK_AFTER_SECONDS = "STUCK_AFTER_SECONDS"
WORKFLOW_TIMEOUT_SECONDS = "WORKFLOW_TIMEOUT_SECONDS"
# Days a final payment keeps its payer fields before the sweeper removes them (sweeper only).
PAYER_DATA_DAYS = "PAYER_DATA_DAYS"
