"""Daily and hourly reports (专报): calls, tiers, work orders, repeated requests and hot topics.

:mod:`hot` finds the terms whose frequency today departs from the trailing days (pure);
:mod:`build` reads one period's figures from SQL; :mod:`render` writes them as JSON, a
self-contained HTML page and a PDF.  docs/reports.md describes them.
"""
