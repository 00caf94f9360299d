"""The ACD server runs without the extras (setup.cfg): matplotlib, tqdm ([sim]) and textual ([seat])
are imported only by the commands that need them, and those commands name the extra when it is missing.

Each check runs in a fresh interpreter whose import system refuses those packages (a
``sys.meta_path`` finder raising ImportError), as on a machine where only ``pip install
callcenter`` ran.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

BLOCKER = textwrap.dedent('''
    import sys
    BLOCKED = {"matplotlib", "tqdm", "textual"}

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, Blocked())
''')


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_serve_and_every_subsystem_import_without_the_extras():
    proc = run_blocked('''
        import importlib
        import callcenter.app, callcenter.cli
        for name in callcenter.app.SUBSYSTEM_MODULES:   # what `callcenter serve` loads
            importlib.import_module(name)
        callcenter.cli.build_parser()                    # every subcommand registers
        assert callcenter.cli.main(["config", "check", "deploy/callcenter.yaml"]) == 0
        import seat_agent.cli, seat_agent.client, seat_agent.robot   # headless robot agents
        seat_agent.cli.build_parser().parse_args(["robot", "--agents", "a"])
        print("LOADED", sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED))
    ''')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout


def test_the_commands_that_need_an_extra_name_it():
    proc = run_blocked('''
        import callcenter.cli, seat_agent.cli
        for main, argv in ((callcenter.cli.main, ["simulate", "--scenario", "deploy/scenarios/x.yaml"]),
                           (seat_agent.cli.main, ["tui", "--agent", "a", "--password", "p"])):
            try:
                main(argv)
            except SystemExit as exc:
                print("EXIT", exc.code)
    ''')
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("EXIT callcenter simulate needs matplotlib, tqdm") and "callcenter[sim]" in lines[0]
    assert lines[1].startswith("EXIT seat-agent tui needs textual") and "callcenter[seat]" in lines[1]
