"""The notifier: emails a team's owners, once, when their domain fails (or becomes verified)."""
