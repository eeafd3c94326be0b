"""The mailboxes resource: its controller, use cases, repository and schemas."""
