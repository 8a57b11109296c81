"""The Hasura-style compiler: catalog, selections, and SQL for queries and mutations."""
