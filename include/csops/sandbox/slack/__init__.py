"""The Slack sink: a local stand-in for Slack incoming webhooks that keeps every post it accepts."""
