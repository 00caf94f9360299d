"""Live ACD state in Redis and active/standby failover.

* :mod:`.lease`    -- who is active: a lease key with a TTL and a fencing token;
* :mod:`.store`    -- the engine's state in Redis: snapshot + journal, written off the reactor;
* :mod:`.runner`   -- where blocking redis-py calls run (one dedicated thread each);
* :mod:`.sentinel` -- ``redis+sentinel://`` URLs for production;
* :mod:`.service`  -- the subsystem that ties them to the ``Acd`` runtime.

docs/failover.md explains the design and its trade-offs.
"""
