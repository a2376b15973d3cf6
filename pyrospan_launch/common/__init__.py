"""Small helpers both the launcher and the agent use: the log line and secret redaction."""
