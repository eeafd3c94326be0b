"""Teams and their API keys: the operator's use cases, the key ring, the repository."""
