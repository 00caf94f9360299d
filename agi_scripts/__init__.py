"""Classic AGI entry points (pyst2), one module per entry point.

* hotline_inbound.py - an inbound 12345 call: relays to the ACD's flow.
* callback_call.py   - the end of a callback leg (its h extension): reports it.
* agent_answered.py  - Dial's U() gosub on the agent leg: reports the answer.
* hangup_report.py   - the inbound context's h extension: safety-net report.

They are thin relays (callcenter/agi/relay_client.py); the flow runs in the ACD.
"""
