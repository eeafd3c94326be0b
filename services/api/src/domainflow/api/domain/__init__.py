"""The api's pure domain logic: names, records, the state machine, keys and mailboxes (no I/O)."""
