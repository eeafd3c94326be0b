"""The provisioner's outside systems: its saga store (SQL), the mail server, Amazon SES."""
