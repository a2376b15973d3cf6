"""The agent: everything that runs inside the app, from the bootstrap on.

Kept empty: the bootstrap imports modules of this package at start-up, before the app.
"""
