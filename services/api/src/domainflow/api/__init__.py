"""The api service: REST endpoints, API keys, and the domain state machine it owns."""
