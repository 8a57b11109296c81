"""One media worker: the MediaManager façade and its collaborators (publishers, leases, sweep, observers)."""
