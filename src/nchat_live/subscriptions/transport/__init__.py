"""GraphQL over websockets: the two subprotocols, the per-socket connection, shared event feeds.

Every operation goes through the one GraphQL pipeline (`graphql/execution.py`); nothing here
validates or executes on its own, and nothing in `graphql/` imports this package.
"""
