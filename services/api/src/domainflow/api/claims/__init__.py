"""Claims: a team takes a name another team holds by showing it owns it."""
