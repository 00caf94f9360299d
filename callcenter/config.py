"""The one YAML config file: schema, validation and environment overrides.

Every error names its key path (``pools[2].tier``) and what was expected, and
all errors are reported at once, so an admin fixes a file in one pass.  The
schema is pydantic; the cross-references between sections (a queue naming an
unknown pool, a tier rule for a tier no pool has) are checked by hand in
:func:`_cross_check` so they are reported together with the type errors.

docs/config.md documents every key; keep the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callcenter.bounds import DAY_S, MAX_COUNT, bounded
from callcenter.orders.rules import OrdersConfig

__all__ = [
    "Config",
    "ConfigError",
    "load_config",
    "parse_config",
    "serving_issues",
    "ENV_OVERRIDES",
]

# Every number finite and bounded (callcenter/bounds.py): one day is the longest
# timer, a million the largest count.
Seconds = bounded(float, ge=0, le=DAY_S)
PosSeconds = bounded(float, gt=0, le=DAY_S)
Count = bounded(int, ge=0, le=MAX_COUNT)
PosCount = bounded(int, ge=1, le=MAX_COUNT)
Share = bounded(float, ge=0, le=1)
Tier = bounded(int, ge=0, le=9)
PosTier = bounded(int, ge=1, le=9)
Priority = bounded(int, ge=0, le=1000)
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
Port = Annotated[int, Field(ge=0, le=65535)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listen(_Model):
    host: str = "127.0.0.1"
    fastagi_port: Port = 4573
    seat_port: Port = 8443
    admin_port: Port = 8080
    agi_relay_port: Port | None = None  # classic scripts' relay; None: fastagi_port + 1


class Tls(_Model):
    cert: str | None = None
    key: str | None = None


class AdminToken(_Model):
    name: Name
    role: Annotated[str, Field(pattern=r"^(admin|supervisor|viewer|lender:[A-Za-z0-9_.:-]+|unit:[^\s/]{1,140})$")]
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Acd(_Model):
    name: Name = "acd-1"
    state_dir: str = ".state"
    listen: Listen = Listen()
    redis_url: str | None = None
    database_url: str | None = None
    tls: Tls = Tls()
    agi_secret: str | None = None
    caller_hash_key: str | None = None
    admin_tokens: list[AdminToken] = []
    lease_ttl_s: bounded(float, gt=0, le=600) = 3.0
    # after a takeover or restart: how long a restored call waits for its AGI session (or its agent's
    # seat) and a restored agent for its seat, before the ACD ends / logs it out (docs/failover.md)
    restore_grace_s: bounded(float, gt=0, le=600) = 30.0
    # a clean stop (SIGTERM): hand the calls over to a standby, or end them (acd-shutdown) and mark
    # the live state clean so the next start is clean; auto: hand over only with a shared redis_url
    on_stop: Literal["auto", "hand-over", "end-calls"] = "auto"
    max_calls: PosCount = 5000
    max_setups_per_s: bounded(float, gt=0, le=100_000) = 400.0
    seat_demo_call_control: bool = False  # demos and load tests without Asterisk: a seat's accept answers
    callfile_dir: str | None = None  # Asterisk's outgoing spool, for callbacks; None: callbacks not placed
    seat_token_secret: Annotated[str, Field(min_length=16)] | None = None  # HMAC key of seat tokens, shared by the cluster; None: per process
    dev_mode: bool = False  # a development machine: shipped secrets accepted, with a warning every minute


class Category(_Model):
    name: Name
    priority: Priority = 0
    urgent: bool = False
    skill: Name | None = None
    skill_mode: Literal["required", "preferred"] = "preferred"


class Pool(_Model):
    name: Name
    kind: Literal["own", "remote", "borrowed", "carrier"]
    tier: Tier = 0
    wrapup_s: Seconds = 15.0
    ring_timeout_s: PosSeconds = 15.0
    max_no_answer: bounded(int, ge=1, le=100) = 3
    lender: str | None = None
    max_share: Share | None = None
    home_waiting_max: Count | None = None
    home_report_ttl_s: PosSeconds = 120.0


class TierRule(_Model):
    tier: PosTier
    after_s: Seconds | None = None
    ewt_over_s: Seconds | None = None
    urgent_at_once: bool = True


class EmergencyPlan(_Model):
    all_tiers_at_once: bool = False
    tiers: list[TierRule] | None = None
    callback_beyond_position: PosCount | None = None
    announce_every_s: PosSeconds | None = None
    announcement: Annotated[str, Field(pattern=r"^[A-Za-z0-9_./-]{1,120}$")] | None = None  # a sound file


class Callback(_Model):
    offer: bool = True
    abandoned_to_callback: bool = False
    min_wait_for_abandoned_s: Seconds = 5.0


class Queue(_Model):
    name: Name
    pools: Annotated[list[Name], Field(min_length=1)]
    tiers: list[TierRule] = []
    selection: Literal["longest-idle", "fewest-calls", "round-robin"] = "longest-idle"
    default_category: Name = "other"
    announce_every_s: PosSeconds = 30.0
    max_wait_s: PosSeconds = 900.0
    aht_s: PosSeconds = 240.0
    callback: Callback = Callback()
    emergency_plans: dict[Name, EmergencyPlan] = {}


class Config(_Model):
    acd: Acd = Acd()
    categories: Annotated[list[Category], Field(min_length=1)]
    pools: Annotated[list[Pool], Field(min_length=1)]
    queues: Annotated[list[Queue], Field(min_length=1)]
    orders: OrdersConfig = OrdersConfig()  # work orders: dispatch, deadlines, supervision (docs/orders.md)

    def pool(self, name: str) -> Pool:
        return next(p for p in self.pools if p.name == name)

    def queue(self, name: str) -> Queue:
        return next(q for q in self.queues if q.name == name)

    def category(self, name: str) -> Category:
        return next(c for c in self.categories if c.name == name)


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A config file that cannot be used; ``issues`` holds every problem found."""

    def __init__(self, issues: list[ConfigIssue], source: str = "config"):
        self.issues = issues
        self.source = source
        super().__init__("\n".join(str(i) for i in issues))


# Environment variables that override secrets and URLs (12-factor style), so
# production secrets need not sit in the YAML file.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "CALLCENTER_REDIS_URL": ("acd", "redis_url"),
    "CALLCENTER_DATABASE_URL": ("acd", "database_url"),
    "CALLCENTER_AGI_SECRET": ("acd", "agi_secret"),
    "CALLCENTER_CALLER_HASH_KEY": ("acd", "caller_hash_key"),
    "CALLCENTER_STATE_DIR": ("acd", "state_dir"),
    "CALLCENTER_CALLFILE_DIR": ("acd", "callfile_dir"),
    "CALLCENTER_SEAT_DEMO": ("acd", "seat_demo_call_control"),
    "CALLCENTER_AGI_RELAY_PORT": ("acd", "listen", "agi_relay_port"),
    "CALLCENTER_SEAT_TOKEN_SECRET": ("acd", "seat_token_secret"),
}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_WORDS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
}


def _constraint_words(metadata: list[Any]) -> str:
    words = []
    for m in metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None and isinstance(m, annotated_types.BaseMetadata):
                words.append(f"{sym} {v}")
    return " and ".join(words)


def _field_info(model: type[BaseModel], loc: tuple[Any, ...]):
    """Walk ``loc`` through the schema to the FieldInfo it names, if any."""
    import typing

    current: Any = model
    info = None
    for part in loc:
        if isinstance(part, int) or (info is not None and isinstance(part, str) and typing.get_origin(current) is dict):
            args = typing.get_args(current)
            if typing.get_origin(current) in (list, dict) and args:
                current = args[-1]
            continue
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            info = current.model_fields[part]
            current = info.annotation
            # unwrap Optional / Annotated
            for _ in range(3):
                origin = typing.get_origin(current)
                if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
                    args = [a for a in typing.get_args(current) if a is not type(None)]
                    current = args[0] if len(args) == 1 else current
                elif origin is typing.Annotated:
                    current = typing.get_args(current)[0]
        else:
            return None
    return info


# What a pattern-checked field wants, in words (the default: a Name).
_PATTERN_WORDS = {
    "role": "admin, supervisor, viewer, lender:NAME or unit:ID",
    "token_sha256": "64 lowercase hex digits, the sha256 of the token (`callcenter admin token-hash` prints it)",
    "announcement": "a sound file name of 1-120 letters, digits and _ . / -",
}


def _describe(model: type[BaseModel], err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    typ = err["type"]
    got = err.get("input")
    got_s = f", got {got!r}".replace("'", '"') if not isinstance(got, dict | list) else ""
    if typ == "missing":
        return "required key is missing"
    if typ == "extra_forbidden":
        return "unknown key (check the spelling; see docs/config.md)"
    if typ == "literal_error":
        return f"expected one of {err['ctx']['expected']}{got_s}"
    if typ == "string_pattern_mismatch":
        what = _PATTERN_WORDS.get(str(loc[-1]) if loc else "", "a name of 1-64 letters, digits and . _ : -, "
                                                                  "starting with a letter or digit")
        return f"expected {what}{got_s}"
    info = _field_info(model, loc)
    if info is not None and info.annotation is not None:
        import typing

        ann = info.annotation
        base = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
        base_t = base[0]
        if typing.get_origin(base_t) is typing.Annotated:
            base_t = typing.get_args(base_t)[0]
        noun = _TYPE_WORDS.get(base_t)
        cons = _constraint_words(info.metadata)
        if typ == "finite_number":
            return f"expected a finite number{' ' + cons if cons else ''}{got_s}"
        if noun and typ.endswith(("_parsing", "_type", "_than", "_equal")) and not typ.startswith("list"):
            return f"expected {noun}{' ' + cons if cons else ''}{got_s}"
    msg = err["msg"]
    return f"{msg[0].lower() + msg[1:]}{got_s}"


def _cross_check(raw: Any) -> list[ConfigIssue]:
    """Checks between sections, tolerant of a structurally broken file."""
    issues: list[ConfigIssue] = []
    if not isinstance(raw, dict):
        return issues

    def names(section: str) -> dict[str, int]:
        seen: dict[str, int] = {}
        items = raw.get(section)
        if not isinstance(items, list):
            return seen
        for i, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                if item["name"] in seen:
                    issues.append(ConfigIssue(f"{section}[{i}].name", f"duplicate name {item['name']!r} (first at {section}[{seen[item['name']]}])"))
                else:
                    seen[item["name"]] = i
        return seen

    pools = names("pools")
    cats = names("categories")
    names("queues")
    pool_items = raw.get("pools") if isinstance(raw.get("pools"), list) else []
    for i, p in enumerate(pool_items):
        if not isinstance(p, dict):
            continue
        if p.get("kind") == "borrowed" and p.get("max_share") is None:
            issues.append(ConfigIssue(f"pools[{i}].max_share", "required for a borrowed pool (the largest share of the lender's agents we may use)"))
        if p.get("kind") != "borrowed":
            for key in ("max_share", "home_waiting_max", "lender"):
                if p.get(key) is not None:
                    issues.append(ConfigIssue(f"pools[{i}].{key}", "only allowed on a pool of kind 'borrowed'"))
    queues = raw.get("queues") if isinstance(raw.get("queues"), list) else []
    for qi, q in enumerate(queues):
        if not isinstance(q, dict):
            continue
        qpools = q.get("pools") if isinstance(q.get("pools"), list) else []
        tiers_present = set()
        complete = bool(qpools)  # judge tiers only when every pool resolved to a valid tier
        for pi, pname in enumerate(qpools):
            if isinstance(pname, str) and pools and pname not in pools:
                issues.append(ConfigIssue(f"queues[{qi}].pools[{pi}]", f"unknown pool {pname!r}; known: {sorted(pools)}"))
                complete = False
            elif isinstance(pname, str) and pname in pools:
                t = pool_items[pools[pname]].get("tier", 0)
                if isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= 9:
                    tiers_present.add(t)
                else:
                    complete = False
            else:
                complete = False
        if not complete:
            tiers_present = set()
        if tiers_present and 0 not in tiers_present:
            issues.append(ConfigIssue(f"queues[{qi}].pools", "no tier-0 pool: calls could never be offered at once"))
        rules = q.get("tiers") if isinstance(q.get("tiers"), list) else []
        ruled = set()
        for ri, r in enumerate(rules):
            if not isinstance(r, dict):
                continue
            t = r.get("tier")
            if isinstance(t, int):
                if t in ruled:
                    issues.append(ConfigIssue(f"queues[{qi}].tiers[{ri}].tier", f"tier {t} has two rules"))
                ruled.add(t)
                if tiers_present and t not in tiers_present:
                    issues.append(ConfigIssue(f"queues[{qi}].tiers[{ri}].tier", f"no pool of this queue has tier {t}"))
        for t in sorted(tiers_present - ruled - {0}):
            issues.append(ConfigIssue(f"queues[{qi}].tiers", f"pools of tier {t} have no rule: add {{tier: {t}, after_s: ...}}"))
        dc = q.get("default_category", "other")
        if isinstance(dc, str) and cats and dc not in cats:
            issues.append(ConfigIssue(f"queues[{qi}].default_category", f"unknown category {dc!r}; known: {sorted(cats)}"))
    return issues


def serving_issues(config: Config) -> list[ConfigIssue]:
    """What makes a valid config unfit to *serve* calls (``config check`` and ``serve`` refuse it).

    Kept out of :func:`parse_config` on purpose: the engine and the simulator
    model callbacks without placing them, so there the same config is fine.
    """
    issues: list[ConfigIssue] = []
    for qi, q in enumerate(config.queues):
        if q.callback.abandoned_to_callback and not config.acd.callfile_dir:
            # Every such callback would be offered, fail as "unavailable" and log a warning
            # (callcenter/fastagi/server.py): a config that cannot work is an error, not 72 warnings.
            issues.append(ConfigIssue(f"queues[{qi}].callback.abandoned_to_callback",
                                      "needs acd.callfile_dir (Asterisk's outgoing call-file spool, env "
                                      "CALLCENTER_CALLFILE_DIR) to place the callbacks; set it, or set this to false"))
    return issues


def parse_config(raw: Any, source: str = "config", env: dict[str, str] | None = None) -> Config:
    """Validate an already-loaded YAML document; raise ConfigError with every issue."""
    if raw is None:
        raise ConfigError([ConfigIssue("", "the file is empty")], source)
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue("", f"expected a mapping at the top level, got {type(raw).__name__}")], source)
    raw = _apply_env(raw, os.environ if env is None else env)
    issues: list[ConfigIssue] = []
    config = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            issues.append(ConfigIssue(_path(tuple(err["loc"])), _describe(Config, err)))
    issues.extend(_cross_check(raw))
    if issues or config is None:
        raise ConfigError(issues, source)
    return config


def _apply_env(raw: dict[str, Any], env: Any) -> dict[str, Any]:
    raw = dict(raw)
    for var, path in ENV_OVERRIDES.items():
        value = env.get(var)
        if value:
            node = raw
            for key in path[:-1]:
                child = node.get(key)
                child = dict(child) if isinstance(child, dict) else {}
                node[key] = child
                node = child
            node[path[-1]] = value
    return raw


# Bounds of the one YAML reader: a config or scenario is a few kilobytes.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 100_000  # counted with aliases expanded, so an alias bomb is refused


class _YamlRefused(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


def _check_nodes(root: yaml.Node) -> None:
    """Refuse duplicate keys (naming their key path), too deep nesting and alias bombs.

    PyYAML keeps the last of two equal keys without a word (the YAML spec says keys
    are unique), so a pasted-twice ``ring_timeout_s`` silently won.  Aliases make the
    node graph a DAG: sizes are counted with a memo, so the walk itself stays linear.
    """
    sizes: dict[int, int] = {}

    def walk(node: yaml.Node, path: str, depth: int) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > MAX_YAML_DEPTH:
            raise _YamlRefused(path, f"nested deeper than {MAX_YAML_DEPTH} levels")
        size = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if isinstance(key, str) and key != "<<":
                    if key in seen:
                        raise _YamlRefused(_join(path, key), f"duplicate key {key!r} (lines {seen[key] + 1} and "
                                                             f"{key_node.start_mark.line + 1}): keep one")
                    seen[key] = key_node.start_mark.line
                size += walk(key_node, path, depth + 1)
                size += walk(value_node, _join(path, key if isinstance(key, str) else "?"), depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                size += walk(item, f"{path}[{i}]", depth + 1)
        if size > MAX_YAML_NODES:
            raise _YamlRefused(path, f"more than {MAX_YAML_NODES} values (aliases expanded)")
        sizes[id(node)] = size
        return size

    walk(root, "", 0)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def read_yaml(path: str | os.PathLike[str], error: type[ConfigError] = ConfigError) -> Any:
    """Read one YAML document; an unreadable or malformed file raises ``error`` naming where.

    The one YAML reader of the project (configs, scenarios): bounded in size, depth
    and expanded size, UTF-8 only, duplicate keys refused.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise error([ConfigIssue("", f"cannot read {p}: {exc.strerror or exc}")], str(p)) from None
    if len(data) > MAX_YAML_BYTES:
        raise error([ConfigIssue("", f"{p} is larger than {MAX_YAML_BYTES} bytes: not a config file?")], str(p))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error([ConfigIssue("", f"not UTF-8 text (byte {exc.start}, line {line}): save the file as UTF-8")],
                    str(p)) from None
    return parse_yaml(text, str(p), error)


def parse_yaml(text: str, source: str = "config", error: type[ConfigError] = ConfigError) -> Any:
    """The YAML of :func:`read_yaml`, from a string."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses NUL and other control characters here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except _YamlRefused as exc:
        raise error([ConfigIssue(exc.path, str(exc))], source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise error([ConfigIssue("", f"not valid YAML: {where}{getattr(exc, 'problem', None) or exc}")],
                    source) from None
    except RecursionError:
        raise error([ConfigIssue("", f"nested deeper than {MAX_YAML_DEPTH} levels")], source) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_config(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Config:
    return parse_config(read_yaml(path), str(path), env)


# Secrets that ship with the project (deploy/*.yaml, the failover drill's config): everyone
# knows them, so they are accepted only with ``acd.dev_mode: true``.  A test checks that every
# secret in deploy/ is listed here.
SHIPPED_SECRETS = frozenset({
    "dev-agi-secret", "dev-caller-hash-key",  # deploy/callcenter.yaml
    "drill-caller-hash-key", "drill-seat-token-secret",  # callcenter/state/cluster.py drill_config
})
SHIPPED_TOKEN_SHA256 = frozenset({
    "1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd",  # sha256("dev-admin-token")
    "5df973adb92cd19269995012ed6ba53bb279c7b478faa1d3c11bb5d43a399aaa",  # sha256("drill-admin-token")
})
_SECRET_ENV = {"agi_secret": "CALLCENTER_AGI_SECRET", "caller_hash_key": "CALLCENTER_CALLER_HASH_KEY",
               "seat_token_secret": "CALLCENTER_SEAT_TOKEN_SECRET"}


def shipped_secret_issues(config: Config) -> list[ConfigIssue]:
    """Every shipped secret ``config`` uses, as issues; errors unless ``acd.dev_mode`` (callers decide)."""
    issues = []
    for key, var in _SECRET_ENV.items():
        if getattr(config.acd, key) in SHIPPED_SECRETS:
            issues.append(ConfigIssue(f"acd.{key}", f"the shipped development secret: set your own (env {var}), "
                                                    "or acd.dev_mode: true on a development machine"))
    for i, token in enumerate(config.acd.admin_tokens):
        if token.token_sha256 in SHIPPED_TOKEN_SHA256:
            issues.append(ConfigIssue(f"acd.admin_tokens[{i}].token_sha256",
                                      f"the shipped development token of {token.name!r}: make your own "
                                      "(`callcenter admin token-hash`), or acd.dev_mode: true on a development machine"))
    return issues


def summary(config: Config) -> str:
    agents_note = ", ".join(f"{p.name}({p.kind}, tier {p.tier})" for p in config.pools)
    return (
        f"ok: {len(config.queues)} queue(s), {len(config.pools)} pool(s): {agents_note}; "
        f"{len(config.categories)} categories"
    )
