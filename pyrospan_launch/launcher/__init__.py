"""The launcher: everything that runs before exec.  It imports nothing from the agent."""
