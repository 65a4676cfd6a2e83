"""Use cases: the action registry and runner, authentication, audit, metrics."""
