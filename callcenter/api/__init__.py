"""The admin and lender HTTP API under ``/api/v1`` on the ACD's admin port.

* openapi.json -- the contract (served at /api/v1/openapi.json);
* auth.py      -- bearer tokens and roles (pure);
* handlers.py  -- request -> response over the engine (pure but for the engine calls);
* resource.py  -- the twisted.web shell; service.py -- ``make_subsystem(acd)``;
* cli.py       -- ``callcenter admin ...`` (a blocking client for terminals).

docs/admin-api.md describes the whole.
"""
