"""The verifier's outside systems: the DNS-over-HTTPS resolver, SES."""
