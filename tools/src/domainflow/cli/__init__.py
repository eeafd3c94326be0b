"""The `domainflow` command: serve, run the local stack, manage keys, drive the sandbox."""
