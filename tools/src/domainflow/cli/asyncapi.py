"""`domainflow asyncapi`: print the generated AsyncAPI document."""

from domainflow.kit.asyncapi import document

__all__ = ["document"]
