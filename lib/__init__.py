"""Infrastructure of the payment platform: the stack, its constructs and the settings."""

from lib import aws_provider

aws_provider.load()
