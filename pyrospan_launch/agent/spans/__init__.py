"""Span-to-sample linking: root-span labels, the runtime context and the task/thread handoff."""
