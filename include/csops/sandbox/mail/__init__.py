"""The mail catcher: a local SMTP server that keeps every message it receives as a file a person can open."""
