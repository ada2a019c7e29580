"""All of the PDS's SQL: the schema, the engine, and one queries module per area."""
