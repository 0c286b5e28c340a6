"""Config handling: the pydantic schema, component resolution, and error reporting."""
