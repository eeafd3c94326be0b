"""The domains resource: its controller, use cases, repository and schemas."""
