"""What every service shares: settings, database and migrations, outbox, inbox, messaging, logs."""
