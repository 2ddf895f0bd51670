"""The alert lifecycle: a pure state machine and the shell that persists and enqueues it."""
