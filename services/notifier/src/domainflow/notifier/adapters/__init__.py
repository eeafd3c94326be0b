"""The notifier's outside systems: its notification log (SQL) and Amazon SES."""
