"""What exists once per AWS account and region, whatever the number of environments in it.

API Gateway writes every REST API's access and execution logs with one CloudWatch role, set in
the account's regional API Gateway settings (``aws_api_gateway_account``). Were an environment to
own that setting, destroying a PR environment would delete the role it points at, and every other
environment in the account would silently stop logging. So it lives in its own stack,
``payments-account``, with its own state, deployed once per account and region before the first
environment (``PAYMENTS_STACK=account npx cdktf deploy``) and never touched by an environment's
deploy or destroy.
"""

from __future__ import annotations

from cdktf import TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.api_gateway_account import ApiGatewayAccount
from constructs import Construct

from lib.iam import AwsAccount, service_role, statement
from lib.settings import SERVICE, Settings
from lib.terraform import REQUIRED_TERRAFORM, aws_provider, configure_backend

ACCOUNT_STACK_NAME = f"{SERVICE}-account"
# The role is shared by every environment of the account, so its name carries no suffix.
API_GATEWAY_LOGS_ROLE = f"{SERVICE}-apigateway-cloudwatch-logs"


def account_state_key(settings: Settings) -> str:
    """One state per account and region; ``_`` never occurs in a suffix, so no environment's
    key (``payments/<suffix>/terraform.tfstate``) can collide with it."""
    return f"{SERVICE}/_account/{settings.region}/terraform.tfstate"


class ApiGatewayLogging(Construct):
    """The account's API Gateway CloudWatch role: writes to API Gateway's log groups only."""

    def __init__(self, scope: Construct, id_: str, *, account: AwsAccount) -> None:
        super().__init__(scope, id_)
        log_groups = [
            account.arn("logs", "log-group:API-Gateway-Execution-Logs_*"),
            account.arn("logs", "log-group:/aws/apigateway/*"),
        ]
        self.role = service_role(
            self,
            "cloudwatch-role",
            name=API_GATEWAY_LOGS_ROLE,
            service="apigateway.amazonaws.com",
            account=account,
            statements=[
                statement(
                    sid="WriteApiLogs",
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:DescribeLogGroups",
                        "logs:DescribeLogStreams",
                        "logs:PutLogEvents",
                        "logs:GetLogEvents",
                        "logs:FilterLogEvents",
                    ],
                    resources=[*log_groups, *(f"{arn}:*" for arn in log_groups)],
                )
            ],
        )
        self.setting = ApiGatewayAccount(
            self, "settings", cloudwatch_role_arn=self.role.arn, depends_on=[self.role.policy]
        )


class AccountStack(TerraformStack):
    """``payments-account``: the account-level settings every environment relies on."""

    def __init__(self, scope: Construct, id_: str, *, settings: Settings) -> None:
        super().__init__(scope, id_)
        self.add_override("terraform.required_version", REQUIRED_TERRAFORM)
        self.backend_notice = configure_backend(self, settings, key=account_state_key(settings))
        tags = settings.default_tags() | {"Environment": "account"}
        aws_provider(self, settings, tags=tags)
        account = AwsAccount(self, "account", region=settings.region)
        logging = ApiGatewayLogging(self, "apigateway-logging", account=account)
        TerraformOutput(self, "apigateway_cloudwatch_role_arn", value=logging.role.arn)
