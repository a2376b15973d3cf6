"""Marks the bootstrap directory as package data of pyrospan_launch; never imported by the bootstrap."""
