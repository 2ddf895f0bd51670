"""Getting messages to chats: the notifier protocol, the outbox worker, pacing and splitting."""
