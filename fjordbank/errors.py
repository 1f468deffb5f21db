"""Errors raised by Fjordbank's adapters and runtime (the domain has its own in domain.errors)."""


class FjordbankError(Exception):
    """Base of every non-domain error in the shared package."""


class ConfigError(FjordbankError):
    """The environment does not describe a usable configuration."""


class PublishError(FjordbankError):
    """A message could not be stored in JetStream. Retryable: nothing was acknowledged."""
