"""Gotcha as a service: the vision pipeline over HTTP for devices without the agent."""
