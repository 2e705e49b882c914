"""The payments stack: assembles the constructs of lib/ the way the architecture diagram reads."""

from __future__ import annotations

from pathlib import Path

from cdktf import TerraformOutput, TerraformStack
from constructs import Construct

from lib.api import Api
from lib.config import Config, webhook_secret_parameter_arn, webhook_secret_parameter_name
from lib.firewall import Firewall
from lib.functions import (
    BATCH_TASKS,
    BATCH_TRIGGER,
    FUNCTIONS,
    PROCESSOR,
    SWEEPER,
    FunctionResources,
    Functions,
)
from lib.guardrails import Guardrails
from lib.iam import AwsAccount
from lib.keys import Keys
from lib.logs import environment_log_group_names
from lib.messaging import PAYMENT_EVENTS, PROCESSING_QUEUE, SUBSCRIBER, Messaging
from lib.monitoring import MonitoredResources, Monitoring
from lib.network import Network
from lib.runtime import BUILD_DIR
from lib.settings import Settings
from lib.storage import Storage
from lib.tables import Tables
from lib.terraform import REQUIRED_TERRAFORM, aws_provider, configure_backend
from lib.triggers import Triggers
from lib.workflow import STATE_MACHINE, Workflow, state_machine_arn

STACK_NAME = "payments"


class PaymentsStack(TerraformStack):
    def __init__(
        self, scope: Construct, id_: str, *, settings: Settings, build_dir: Path = BUILD_DIR
    ) -> None:
        super().__init__(scope, id_)
        self.add_override("terraform.required_version", REQUIRED_TERRAFORM)
        self.backend_notice = configure_backend(
            self, settings, key=settings.state.key if settings.state else ""
        )
        aws_provider(self, settings)

        account = AwsAccount(self, "account", region=settings.region)
        keys = Keys(
            self,
            "keys",
            settings=settings,
            account=account,
            log_group_names=environment_log_group_names(
                settings, function_keys=list(FUNCTIONS), state_machine=STATE_MACHINE
            ),
        )
        network = (
            Network(self, "network", settings=settings, account=account, kms_key_arn=keys.arn)
            if settings.profile.vpc_enabled
            else None
        )
        storage = Storage(self, "storage", settings=settings, account=account, kms_key_arn=keys.arn)
        tables = Tables(self, "tables", settings=settings, kms_key_arn=keys.arn)
        messaging = Messaging(
            self, "messaging", settings=settings, account=account, kms_key_arn=keys.arn
        )
        workflow_arn = state_machine_arn(settings, account)
        functions = Functions(
            self,
            "functions",
            settings=settings,
            account=account,
            build_dir=build_dir,
            vpc=network.placement if network else None,
            resources=FunctionResources(
                kms_key_arn=keys.arn,
                payments_table_arn=tables.payments.arn,
                payments_table_name=tables.payments.name,
                processing_status_table_arn=tables.processing_status.arn,
                processing_status_table_name=tables.processing_status.name,
                audit_log_table_arn=tables.audit_log.arn,
                audit_log_table_name=tables.audit_log.name,
                processing_queue_arn=messaging.processing_queue.arn,
                processing_queue_url=messaging.processing_queue.url,
                batch_trigger_dlq_arn=messaging.batch_trigger_dlq.arn,
                outbox_dlq_arn=messaging.outbox_dlq.arn,
                audit_archive_dlq_arn=messaging.audit_archive_dlq.arn,
                audit_archive_bucket_arn=storage.audit_archive.arn,
                audit_archive_bucket_name=storage.audit_archive.bucket,
                payment_events_topic_arn=messaging.payment_events.arn,
                batch_bucket_arn=storage.bucket.arn,
                batch_bucket_name=storage.bucket.bucket,
                state_machine_arn=workflow_arn,
                webhook_secret_parameter_name=webhook_secret_parameter_name(settings),
                webhook_secret_parameter_arn=webhook_secret_parameter_arn(settings, account),
            ),
        )
        workflow = Workflow(
            self,
            "workflow",
            settings=settings,
            account=account,
            kms_key_arn=keys.arn,
            tasks_function_arn=functions.functions[BATCH_TASKS].arn,
            tasks_timeout=FUNCTIONS[BATCH_TASKS].timeout,
            status_table_arn=tables.processing_status.arn,
            status_table_name=tables.processing_status.name,
            audit_table_arn=tables.audit_log.arn,
            audit_table_name=tables.audit_log.name,
        )
        Triggers(
            self,
            "triggers",
            settings=settings,
            account=account,
            bucket=storage.bucket,
            batch_trigger=functions.batch_trigger,
            processing_queue=messaging.processing_queue,
            processor=functions.processor,
            audit_log=tables.audit_log,
            publisher=functions.publisher,
            outbox_dlq=messaging.outbox_dlq,
            archiver=functions.archiver,
            audit_archive_dlq=messaging.audit_archive_dlq,
            sweeper=functions.sweeper,
            kms_key_arn=keys.arn,
        )
        api = Api(
            self,
            "api",
            settings=settings,
            kms_key_arn=keys.arn,
            handler=functions.api_live,
        )
        functions.name_the_default_key(api.api_key.id)
        Firewall(self, "firewall", settings=settings, kms_key_arn=keys.arn, stage_arn=api.stage.arn)
        outputs = {
            "api_url": api.url,
            "batch_bucket_name": storage.bucket.bucket,
            "audit_archive_bucket_name": storage.audit_archive.bucket,
            "payments_table_name": tables.payments.name,
            "processing_status_table_name": tables.processing_status.name,
            "audit_log_table_name": tables.audit_log.name,
            "processing_queue_url": messaging.processing_queue.url,
            "payment_events_subscriber_queue_url": messaging.subscriber_queue.url,
            "payment_events_topic_arn": messaging.payment_events.arn,
            "state_machine_arn": workflow.state_machine.arn,
        }
        Config(self, "config", settings=settings, kms_key_arn=keys.arn, published=outputs)
        monitoring = Monitoring(
            self,
            "monitoring",
            settings=settings,
            resources=MonitoredResources(
                # Names as plain strings (not resource attributes): they also name the alarms.
                function_names=[settings.name(key) for key in FUNCTIONS],
                dead_letter_queue_names=messaging.dead_letter_queue_names,
                api_name=settings.name("api"),
                stage_name=settings.suffix,
                table_names=[settings.table_name(base) for base in tables.tables],
                state_machine_arn=workflow.state_machine.arn,
                alarms_topic_arn=messaging.alarms.arn,
                sweeper_function_name=settings.name(SWEEPER),
                function_timeouts={
                    settings.name(key): spec.timeout for key, spec in FUNCTIONS.items()
                },
                batch_trigger_function_name=settings.name(BATCH_TRIGGER),
                processor_function_name=settings.name(PROCESSOR),
                batch_tasks_function_name=settings.name(BATCH_TASKS),
                processing_queue_name=settings.name(PROCESSING_QUEUE),
                subscriber_queue_name=settings.name(SUBSCRIBER),
                payment_events_topic_name=settings.name(PAYMENT_EVENTS),
            ),
        )
        if settings.profile.alarms_enabled:
            Guardrails(
                self,
                "guardrails",
                settings=settings,
                key_arn=keys.arn,
                table_names=[t.name for t in tables.tables.values()],
                table_arns=[t.arn for t in tables.tables.values()],
                alarms_topic_arn=messaging.alarms.arn,
            )
        outputs |= {
            "api_id": api.rest_api.id,
            "stage_name": api.stage.stage_name,
            "api_key_id": api.api_key.id,
            "dlq_url": messaging.dlq.url,
            "alarms_topic_arn": messaging.alarms.arn,
            "dashboard_name": monitoring.dashboard.dashboard_name,
        }
        if api.domain is not None:
            # What the DNS alias record of the custom domain points at.
            outputs |= {
                "api_domain_target": api.domain.regional_domain_name,
                "api_domain_zone_id": api.domain.regional_zone_id,
            }
        for name, value in outputs.items():
            TerraformOutput(self, name, value=value)
        TerraformOutput(self, "api_key_value", value=api.api_key.value, sensitive=True)
