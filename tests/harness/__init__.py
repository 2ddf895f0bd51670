"""Loopback fakes of the servers the bot talks to, so tests run the real HTTP path offline."""
