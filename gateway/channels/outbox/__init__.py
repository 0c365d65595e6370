"""The outbox channel: messages stay in Redis, for the phone simulator, tests and offline trials."""
