"""The bot's own HTTP server: operations routes now, the webhook and Mini App later.

See docs/architecture.md, "Operations: HTTP server and metrics".
"""
