"""The Telegram side: one command registry, the PTB application, and the Telegram notifier."""
