import pytest
from twisted.internet.task import Clock

from callcenter.config import parse_config
from callcenter.engine import Engine


def small_config(**queue_overrides):
    """Two queues, own/remote/borrowed pools, skills required and preferred, an urgent category."""
    queue = {
        "name": "hotline",
        "pools": ["own", "remote", "lend"],
        "tiers": [{"tier": 1, "after_s": 20}, {"tier": 2, "after_s": 40, "ewt_over_s": 600}],
        "announce_every_s": 30,
        "max_wait_s": 300,
        "callback": {"offer": True, "abandoned_to_callback": False},
        "emergency_plans": {"surge": {"all_tiers_at_once": True, "announce_every_s": 10}},
    }
    queue.update(queue_overrides)
    return parse_config(
        {
            "categories": [
                {"name": "urgent", "priority": 10, "urgent": True},
                {"name": "policy", "priority": 5, "skill": "epi"},
                {"name": "labour", "priority": 0, "skill": "labour", "skill_mode": "required"},
                {"name": "other", "priority": 0},
            ],
            "pools": [
                {"name": "own", "kind": "own", "tier": 0, "wrapup_s": 5, "ring_timeout_s": 10, "max_no_answer": 2},
                {"name": "remote", "kind": "remote", "tier": 1, "wrapup_s": 5, "ring_timeout_s": 10},
                {"name": "lend", "kind": "borrowed", "tier": 2, "wrapup_s": 5, "ring_timeout_s": 10,
                 "max_share": 0.5, "home_waiting_max": 3, "home_report_ttl_s": 60},
            ],
            "queues": [
                queue,
                {"name": "second", "pools": ["own"], "announce_every_s": 30, "max_wait_s": 300},
            ],
        },
        env={},
    )


class Harness:
    def __init__(self, config=None):
        self.config = config or small_config()
        self.clock = Clock()
        self.engine = Engine(self.config, self.clock)
        self.events = []
        self.engine.subscribe(self.events.append)

    def kinds(self):
        return [e.kind for e in self.events]

    def of(self, kind):
        return [e for e in self.events if e.kind == kind]

    def agent(self, agent_id, pool="own", skills=None, ready=True):
        self.engine.agent_logged_in(agent_id, pool, skills=skills, endpoint=f"PJSIP/{agent_id}")
        if ready:
            self.engine.agent_ready(agent_id)


@pytest.fixture
def h():
    return Harness()
