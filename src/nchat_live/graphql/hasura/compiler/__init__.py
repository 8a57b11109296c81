"""The Hasura-style SQL compiler (pure code): selections, queries, mutations and nested inserts to SQL text."""
