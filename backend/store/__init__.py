"""Persistence: runs, run logs, audit events and the inventory of provisioned resources."""
