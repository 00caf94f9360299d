"""seat-agent: the seat client of the callcenter ACD (library, Textual TUI, headless robots).

``seat_agent.client`` is the library; ``seat-agent tui`` (tui.py) is the
terminal UI for people; ``seat-agent robot`` (robot.py) runs headless agents
for demos and load tests.  docs/seat-protocol.md describes the wire protocol.
"""
