"""Local stand-ins for the outside systems domainflow talks to (a real DoH resolver, moto)."""
