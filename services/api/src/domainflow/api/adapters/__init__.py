"""The api's outside systems: its own PostgreSQL database."""
