"""Run by test_tui.py in a child process: the TUI with a real SeatClient over wss,
under Twisted's asyncio reactor on Textual's event loop (as `seat-agent tui` runs).

Prints one JSON line with what the screen showed; exits 0 when all went well.
"""

import asyncio
import json
import os
import sys
from pathlib import Path


async def main(tmp: Path) -> dict:
    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.get_running_loop())
    from twisted.internet import reactor

    reactor.startRunning(installSignalHandlers=False)
    from seat_agent.client import SeatClient
    from seat_agent.tui import OfferScreen, SeatApp
    from tests.seats.support import SeatWorld

    world = SeatWorld(tmp, demo=True)
    seen: dict = {}
    client = SeatClient(world.url, "a1", "pw-a1", reactor=reactor, cafile=world.cafile, initial_delay=0.05)
    app = SeatApp(client, start=client.start, stop=client.stop)

    async def until(pred, what, timeout=30.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not pred():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async with app.run_test(size=(120, 36)) as pilot:
        await until(lambda: client.logged_in, "login over wss")
        await pilot.pause()
        seen["status"] = str(app.query_one("#status").render())
        await pilot.press("f2")
        await until(lambda: client.state == "ready", "ready")
        world.engine.call_arrived("c1", "hotline", caller_masked="138****5678")
        await until(lambda: isinstance(app.screen, OfferScreen), "offer pop-up")
        seen["offer"] = str(app.screen.query_one("#offer-box").render())
        await pilot.press("a")  # demo call control: accept answers
        await until(lambda: client.call_phase == "on-call", "on call")
        await pilot.pause()
        seen["call"] = str(app.query_one("#call").render())
    await world.close().asFuture(asyncio.get_running_loop())
    if reactor.threadpool is not None:  # the password checks ran there; its threads keep a process alive
        reactor.threadpool.stop()
    return seen


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    print(json.dumps(asyncio.run(main(Path(sys.argv[1])))))
