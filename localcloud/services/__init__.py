"""The emulated services, one module (or package) each, as moto and LocalStack lay theirs out.

Each module holds the patches for the gaps between moto and AWS in its service, each patch a
function named for what it makes true, and what the local cloud runs beside moto for that
service (the Lambda runner, the SQS and DynamoDB Streams pollers, the scheduler).
``localcloud.patches.apply`` applies the patches in order.
"""
