"""The AGI wire protocol as Asterisk 22 speaks it (pure code, no I/O).

:mod:`callcenter.agi.protocol` parses what Asterisk sends (the ``agi_*``
environment block, result lines, multi-line 520, 510, 511, the unprompted
``HANGUP`` line) and formats what we send.  It is shared by the FastAGI server
in the ACD, the classic-AGI relay script and the test peer.  Kept free of
heavy imports: the classic script imports it on every call.
"""
