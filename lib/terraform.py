"""What every stack of the app shares: where its state lives and how it reaches AWS."""

from __future__ import annotations

from cdktf import LocalBackend, S3Backend, TerraformStack
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags

from lib.settings import Settings

# S3-native state locking (use_lockfile) arrived in Terraform 1.10.
REQUIRED_TERRAFORM = ">= 1.10"


def configure_backend(stack: TerraformStack, settings: Settings, *, key: str) -> str | None:
    """S3 state at ``key`` when a state bucket is configured; else local state, said aloud."""
    if settings.state is None:
        # Relative to the stack's directory in cdktf.out, never an absolute path of this machine.
        LocalBackend(stack, path=f"terraform.{stack.node.id}.tfstate")
        return (
            "notice: TERRAFORM_STATE_BUCKET is not set, so Terraform state stays in a local file "
            "(set TERRAFORM_STATE_BUCKET and TERRAFORM_STATE_BUCKET_REGION for shared S3 state)"
        )
    local_cloud = (
        {
            "use_path_style": True,
            "skip_credentials_validation": True,
            "skip_metadata_api_check": True,
            "skip_region_validation": True,
        }
        if settings.endpoint_url
        else {}
    )
    backend = S3Backend(
        stack,
        bucket=settings.state.bucket,
        key=key,
        region=settings.state.region,
        encrypt=True,
        **local_cloud,
    )
    # cdktf 0.21 predates the S3 backend's native lock file, so set it as a raw override.
    backend.add_override("use_lockfile", True)
    return None


def aws_provider(
    stack: TerraformStack, settings: Settings, *, tags: dict[str, str] | None = None
) -> AwsProvider:
    # The local cloud is reached through AWS_ENDPOINT_URL, which the provider reads itself; it
    # has no real account, credentials or instance metadata, and no virtual-hosted S3 names.
    local_cloud = (
        {
            "skip_credentials_validation": True,
            "skip_metadata_api_check": "true",
            "s3_use_path_style": True,
        }
        if settings.endpoint_url
        else {}
    )
    return AwsProvider(
        stack,
        "aws",
        region=settings.region,
        default_tags=[AwsProviderDefaultTags(tags=tags or settings.default_tags())],
        **local_cloud,
    )
