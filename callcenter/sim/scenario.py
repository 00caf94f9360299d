"""The simulation scenario: what tomorrow looks like, as a YAML file.

A scenario names the queues and pools of a config file (callcenter.yaml) and
says how many callers arrive when, how patient they are, how long they talk,
which agents sit in which pool at which hour, how often a ringing seat goes
unanswered, and how busy the lending hotlines are at home.  docs/simulator.md
documents every key; deploy/scenarios/ holds examples.

Errors name the key path (``queues.hotline-12345.calls_per_hour``) and what
was expected, and all of them are reported at once (like the config file).
Distributions are small tagged mappings, e.g. ``{dist: exponential, mean_s: 90}``
or ``{dist: lognormal, mean_s: 240, cv: 0.7}``; each has :meth:`sampler` that
returns a zero-argument function drawing from an injected ``random.Random``.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callcenter.config import Config, ConfigError, ConfigIssue, read_yaml

__all__ = [
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
    "check_against_config",
    "Distribution",
]

HOURS = 24


class ScenarioError(ConfigError):
    """A scenario file that cannot be used; ``issues`` lists every problem with its key path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- distributions --------------------------------------------------------------
class Exponential(_Model):
    dist: Literal["exponential"]
    mean_s: Annotated[float, Field(gt=0)]

    def sampler(self, rng: random.Random):
        rate = 1.0 / self.mean_s
        ex = rng.expovariate
        return lambda: ex(rate)

    @property
    def mean(self) -> float:
        return self.mean_s


class Constant(_Model):
    dist: Literal["constant"]
    value_s: Annotated[float, Field(ge=0)]

    def sampler(self, rng: random.Random):
        v = self.value_s
        return lambda: v

    @property
    def mean(self) -> float:
        return self.value_s


class Uniform(_Model):
    dist: Literal["uniform"]
    low_s: Annotated[float, Field(ge=0)]
    high_s: Annotated[float, Field(ge=0)]

    @model_validator(mode="after")
    def _order(self):
        if self.high_s < self.low_s:
            raise ValueError("high_s must be >= low_s")
        return self

    def sampler(self, rng: random.Random):
        lo, hi = self.low_s, self.high_s
        u = rng.random
        return lambda: lo + (hi - lo) * u()

    @property
    def mean(self) -> float:
        return (self.low_s + self.high_s) / 2


class LogNormal(_Model):
    """Log-normal given its mean and coefficient of variation (sd / mean): talk times."""

    dist: Literal["lognormal"]
    mean_s: Annotated[float, Field(gt=0)]
    cv: Annotated[float, Field(gt=0)] = 1.0

    def sampler(self, rng: random.Random):
        sigma2 = math.log1p(self.cv**2)
        mu = math.log(self.mean_s) - sigma2 / 2
        sigma = math.sqrt(sigma2)
        lv = rng.lognormvariate
        return lambda: lv(mu, sigma)

    @property
    def mean(self) -> float:
        return self.mean_s


class Gamma(_Model):
    """Gamma given its mean and coefficient of variation (cv = 1 is exponential)."""

    dist: Literal["gamma"]
    mean_s: Annotated[float, Field(gt=0)]
    cv: Annotated[float, Field(gt=0)] = 1.0

    def sampler(self, rng: random.Random):
        k = 1.0 / self.cv**2
        theta = self.mean_s / k
        gv = rng.gammavariate
        return lambda: gv(k, theta)

    @property
    def mean(self) -> float:
        return self.mean_s


class Weibull(_Model):
    """Weibull given its mean and shape (shape < 1: many hang up early; > 1: patience builds)."""

    dist: Literal["weibull"]
    mean_s: Annotated[float, Field(gt=0)]
    shape: Annotated[float, Field(gt=0)] = 1.0

    def sampler(self, rng: random.Random):
        scale = self.mean_s / math.gamma(1 + 1 / self.shape)
        wv = rng.weibullvariate
        k = self.shape
        return lambda: wv(scale, k)

    @property
    def mean(self) -> float:
        return self.mean_s


class Infinite(_Model):
    """Never: a caller with infinite patience (the Erlang C caller)."""

    dist: Literal["infinite"]

    def sampler(self, rng: random.Random):
        return lambda: math.inf

    @property
    def mean(self) -> float:
        return math.inf


Distribution = Annotated[
    Exponential | Constant | Uniform | LogNormal | Gamma | Weibull | Infinite,
    Field(discriminator="dist"),
]


def _hour(v: Any) -> Any:
    """Accept 8, 8.5 or "08:30" for a time of day in hours."""
    if isinstance(v, str):
        parts = v.strip().split(":")
        try:
            if len(parts) == 2:
                return int(parts[0]) + int(parts[1]) / 60
            return float(v)
        except ValueError:
            raise ValueError(f'expected hours as a number or "HH:MM", got "{v}"') from None
    return v


Hour = Annotated[float, Field(ge=0, le=48)]


# -- arrivals -------------------------------------------------------------------
class QueueLoad(_Model):
    """The callers of one queue."""

    calls_per_hour: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=HOURS, max_length=HOURS)] | None = None
    daily_calls: Annotated[float, Field(ge=0)] | None = None
    profile: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=HOURS, max_length=HOURS)] | None = None
    category_mix: dict[str, Annotated[float, Field(ge=0)]] = {}
    patience: Distribution = Exponential(dist="exponential", mean_s=90.0)
    talk: Distribution = LogNormal(dist="lognormal", mean_s=240.0, cv=0.8)
    callback_accept: Annotated[float, Field(ge=0, le=1)] = 0.0

    @model_validator(mode="after")
    def _one_volume(self):
        if (self.calls_per_hour is None) == (self.daily_calls is None):
            raise ValueError("give either calls_per_hour (24 numbers) or daily_calls with a profile")
        if self.daily_calls is not None and self.profile is None:
            raise ValueError("daily_calls needs a profile (24 relative weights, one per hour)")
        if self.profile is not None and sum(self.profile) <= 0:
            raise ValueError("profile must have a positive weight somewhere")
        return self

    def hourly(self) -> list[float]:
        """Expected arrivals in each hour 0..23 (before the surge multiplier)."""
        if self.calls_per_hour is not None:
            return list(self.calls_per_hour)
        total = sum(self.profile)
        return [self.daily_calls * w / total for w in self.profile]


# -- agents ---------------------------------------------------------------------
class Shift(_Model):
    start: Hour
    end: Hour
    agents: Annotated[int, Field(ge=0)]

    _hours = field_validator("start", "end", mode="before")(_hour)

    @model_validator(mode="after")
    def _order(self):
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class PoolStaff(_Model):
    """The simulated agents of one pool."""

    agents_per_hour: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=HOURS, max_length=HOURS)] | None = None
    shifts: list[Shift] | None = None
    skills: dict[str, Annotated[int, Field(ge=1, le=5)]] = {}
    ring: Distribution = Uniform(dist="uniform", low_s=2.0, high_s=6.0)
    no_answer: Annotated[float, Field(ge=0, le=1)] = 0.0
    wrapup: Distribution | None = None
    ready_again_s: Annotated[float, Field(gt=0)] = 60.0
    home_waiting: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=HOURS, max_length=HOURS)] | None = None
    home_report_every_s: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _one_roster(self):
        if (self.agents_per_hour is None) == (self.shifts is None):
            raise ValueError("give either agents_per_hour (24 integers) or shifts")
        return self

    def intervals(self) -> list[tuple[float, float]]:
        """(login, logout) in hours for each simulated agent, in a stable order."""
        out: list[tuple[float, float]] = []
        if self.shifts is not None:
            for s in self.shifts:
                out.extend([(s.start, s.end)] * s.agents)
            return out
        counts = self.agents_per_hour
        width = max(counts) if counts else 0
        for i in range(width):
            start = None
            for h in range(HOURS + 1):
                on = h < HOURS and counts[h] > i
                if on and start is None:
                    start = h
                elif not on and start is not None:
                    out.append((float(start), float(h)))
                    start = None
        return out

    def on_shift(self, hour: int) -> int:
        """Agents logged in during ``hour`` (for the planner)."""
        if self.agents_per_hour is not None:
            return self.agents_per_hour[hour]
        mid = hour + 0.5
        return sum(s.agents for s in self.shifts if s.start <= mid < s.end)


class EmergencySwitch(_Model):
    at: Hour
    queue: str
    plan: str | None

    _hours = field_validator("at", mode="before")(_hour)


class Scenario(_Model):
    name: str = "scenario"
    description: str = ""
    start_hour: Hour = 0.0
    end_hour: Hour = 24.0
    surge: Annotated[float, Field(ge=0)] = 1.0
    service_level_s: Annotated[float, Field(gt=0)] = 15.0
    drain_limit_s: Annotated[float, Field(ge=0)] = 7200.0
    queues: Annotated[dict[str, QueueLoad], Field(min_length=1)]
    pools: Annotated[dict[str, PoolStaff], Field(min_length=1)]
    emergency: list[EmergencySwitch] = []

    _hours = field_validator("start_hour", "end_hour", mode="before")(_hour)

    @model_validator(mode="after")
    def _window(self):
        if self.end_hour <= self.start_hour:
            raise ValueError("end_hour must be after start_hour")
        if self.end_hour > HOURS:
            raise ValueError("end_hour must be <= 24 (one day)")
        return self


# -- loading --------------------------------------------------------------------
def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"exponential", "constant", "uniform", "lognormal", "gamma", "weibull", "infinite"}:
            continue  # the discriminated-union tag pydantic adds to the path
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: dict[str, Any]) -> str:
    typ = err["type"]
    got = err.get("input")
    got_s = f", got {got!r}".replace("'", '"') if not isinstance(got, dict | list) else ""
    if typ == "missing":
        return "required key is missing"
    if typ == "extra_forbidden":
        return "unknown key (check the spelling; see docs/simulator.md)"
    if typ == "union_tag_invalid":
        return f"unknown distribution {err['ctx'].get('tag')!r}; expected one of {err['ctx']['expected_tags']}"
    if typ == "union_tag_not_found":
        return "a distribution needs a 'dist' key (exponential, constant, uniform, lognormal, gamma, weibull, infinite)"
    if typ in ("too_short", "too_long") and isinstance(got, list):
        ctx = err.get("ctx", {})
        want = ctx.get("min_length") if typ == "too_short" else ctx.get("max_length")
        if want == HOURS:
            return f"expected {HOURS} values (one per hour 0..23), got {len(got)}"
        return f"expected {'at least' if typ == 'too_short' else 'at most'} {want} items, got {len(got)}"
    if typ == "value_error":
        got_s = ""
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{msg[0].lower() + msg[1:]}{got_s}"


def parse_scenario(raw: Any, source: str = "scenario") -> Scenario:
    """Validate a loaded YAML document; raise ScenarioError listing every issue."""
    if raw is None:
        raise ScenarioError([ConfigIssue("", "the file is empty")], source)
    if not isinstance(raw, dict):
        raise ScenarioError([ConfigIssue("", f"expected a mapping at the top level, got {type(raw).__name__}")], source)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        issues = [ConfigIssue(_path(tuple(e["loc"])), _message(e)) for e in exc.errors()]
        raise ScenarioError(issues, source) from None


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_yaml(path, ScenarioError), str(path))


def check_against_config(scenario: Scenario, config: Config, source: str = "scenario") -> None:
    """Every queue, pool, category and plan the scenario names must exist in the config."""
    issues: list[ConfigIssue] = []
    queues = {q.name: q for q in config.queues}
    pools = {p.name: p for p in config.pools}
    cats = {c.name for c in config.categories}
    for qname, load in scenario.queues.items():
        if qname not in queues:
            issues.append(ConfigIssue(f"queues.{qname}", f"unknown queue; the config has {sorted(queues)}"))
        for cname in load.category_mix:
            if cname not in cats:
                issues.append(ConfigIssue(f"queues.{qname}.category_mix.{cname}", f"unknown category; the config has {sorted(cats)}"))
        if load.category_mix and sum(load.category_mix.values()) <= 0:
            issues.append(ConfigIssue(f"queues.{qname}.category_mix", "weights must not all be 0"))
    for pname, staff in scenario.pools.items():
        if pname not in pools:
            issues.append(ConfigIssue(f"pools.{pname}", f"unknown pool; the config has {sorted(pools)}"))
            continue
        if staff.home_waiting is not None and pools[pname].kind != "borrowed":
            issues.append(ConfigIssue(f"pools.{pname}.home_waiting", "only a borrowed pool has a home line"))
    for i, sw in enumerate(scenario.emergency):
        if sw.queue not in queues:
            issues.append(ConfigIssue(f"emergency[{i}].queue", f"unknown queue; the config has {sorted(queues)}"))
        elif sw.plan is not None and sw.plan not in queues[sw.queue].emergency_plans:
            issues.append(
                ConfigIssue(f"emergency[{i}].plan", f"queue {sw.queue} has no plan {sw.plan!r}; it has {sorted(queues[sw.queue].emergency_plans)}")
            )
    if issues:
        raise ScenarioError(issues, source)
