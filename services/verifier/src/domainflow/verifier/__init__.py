"""The verifier service: checks a domain's DNS records over DoH and SES's DKIM status."""
