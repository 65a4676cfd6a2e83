"""Thin operation handlers, one module per OpenAPI tag, plus the HTTP glue they share."""
