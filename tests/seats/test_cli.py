"""``seat-agent robot --agents``: the documented forms name the same agents, as a shell passes them."""

from __future__ import annotations

import subprocess

import pytest

from seat_agent.cli import build_parser, expand_agents

FIVE = [f"demo-own-{i}" for i in range(1, 6)]


def _words(command: str) -> list[str]:
    """The argv bash makes of ``command`` (brace expansion, quotes), from bash itself."""
    out = subprocess.run(["bash", "-c", f'for w in {command}; do printf "%s\\0" "$w"; done'],
                         capture_output=True, text=True, check=True).stdout
    return out.split("\0")[:-1]


@pytest.mark.parametrize("written", [
    "--agents demo-own-{1..5}",  # bash expands it into five words
    "--agents 'demo-own-{1..5}'",  # seat-agent expands it
    "--agents demo-own-1,demo-own-2,demo-own-3 demo-own-4 demo-own-5",
    "--agents 'demo-own-{1..3}' demo-own-{4..5} demo-own-5",
])
def test_every_written_form_names_the_same_agents(written):
    args = build_parser().parse_args(["robot", *_words(written), "--password", "demo-pass"])
    assert expand_agents(args.agents) == FIVE
    assert args.password == "demo-pass"


def test_a_single_spec_string_still_expands():
    assert expand_agents("a,b,x{2..3}y") == ["a", "b", "x2y", "x3y"]
