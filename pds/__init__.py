"""Skyspot's Personal Data Server."""
