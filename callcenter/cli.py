"""The ``callcenter`` command.

Built in: ``serve [--config FILE] [--log-json]`` and ``config check FILE``.
Other modules add their own subcommands: each module of
:data:`SUBCOMMAND_MODULES` that exists exposes ``register(subparsers)``, adds its
parsers with ``subparsers.add_parser(...)`` and sets
``parser.set_defaults(func=handler)``; ``handler(args)`` returns the exit code
(None means 0).  A module that does not exist yet is skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from callcenter.app import import_optional

__all__ = ["main", "build_parser", "SUBCOMMAND_MODULES"]

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "callcenter.sim.cli",  # simulate, plan
    "callcenter.records.cli",  # migrate, agents, cdr
    "callcenter.api.cli",  # admin
    "callcenter.testing.calls_cli",  # call: test calls over FastAGI, no Asterisk needed
    "callcenter.kb.cli",  # kb
    "callcenter.reports.cli",  # report
)

DEFAULT_CONFIG = os.environ.get("CALLCENTER_CONFIG", "deploy/callcenter.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description="Contact-center ACD with tiered overflow.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an unexpected error (env CALLCENTER_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser("serve", help="run the ACD (FastAGI, seat WebSocket, admin HTTP, metrics)")
    serve.add_argument("--config", default=DEFAULT_CONFIG,
                       help="YAML config file (default: %(default)s; env CALLCENTER_CONFIG)")
    serve.add_argument("--log-json", action="store_true", help="log JSON lines instead of readable lines")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"])
    serve.add_argument("--restore", action="store_true",
                       help="restore the calls and agents of the last run even if it stopped cleanly "
                            "(restored calls stay provisional for acd.restore_grace_s; docs/failover.md)")
    serve.set_defaults(func=_serve)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    config_sub.required = True
    check = config_sub.add_parser("check", help="validate a config file; print every problem, or a summary")
    check.add_argument("file")
    check.set_defaults(func=_config_check)

    for name in SUBCOMMAND_MODULES:
        module = import_optional(name)
        if module is not None:
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from callcenter.cli_errors import run_command

    args = build_parser().parse_args(argv)
    return run_command("callcenter", args.func, args, debug=args.debug)


def _print_config_error(exc, stream) -> None:
    print(f"{exc.source}: {len(exc.issues)} problem(s)", file=stream)
    for issue in exc.issues:
        print(f"  {issue}", file=stream)


def _config_check(args: argparse.Namespace) -> int:
    from callcenter.config import ConfigError, load_config, serving_issues, shipped_secret_issues, summary

    try:
        config = load_config(args.file)
        issues = serving_issues(config)
        if issues:
            raise ConfigError(issues, args.file)
    except ConfigError as exc:
        _print_config_error(exc, sys.stdout)
        return 1
    secrets = shipped_secret_issues(config)
    if secrets and not config.acd.dev_mode:
        _print_config_error(ConfigError(secrets, args.file), sys.stdout)
        return 1
    print(f"{args.file}: {summary(config)}")
    if secrets:
        print(f"{args.file}: warning: acd.dev_mode is on and {len(secrets)} shipped secret(s) are in use; "
              "never deploy this file")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from callcenter.config import ConfigError, load_config, serving_issues, shipped_secret_issues

    try:
        config = load_config(args.config)
        issues = serving_issues(config)
        if issues:
            raise ConfigError(issues, args.config)
    except ConfigError as exc:
        _print_config_error(exc, sys.stderr)
        return 1
    secrets = shipped_secret_issues(config)
    if secrets and not config.acd.dev_mode:
        print("callcenter: refusing to start with shipped secrets (anyone could use them); set acd.dev_mode: "
              "true only on a development machine", file=sys.stderr)
        _print_config_error(ConfigError(secrets, args.config), sys.stderr)
        return 1

    from twisted.internet import reactor
    from twisted.logger import Logger

    from callcenter.app import HARD_EXIT_AFTER_S, Acd
    from callcenter.logs import start_logging
    from callcenter.pidlock import AlreadyRunning
    from callcenter.redis_server import RedisStartError

    start_logging(as_json=args.log_json, level=args.log_level)
    log = Logger(namespace="callcenter.cli")
    acd = Acd(config, reactor, config_path=args.config)
    acd.restore_after_clean_stop = bool(getattr(args, "restore", False))
    try:
        acd.lock()
    except AlreadyRunning as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"callcenter: cannot use state dir {acd.state_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        acd.start_redis()
    except RedisStartError as exc:
        acd.close()
        print(f"callcenter: cannot start the embedded Redis: {exc}", file=sys.stderr)
        return 1

    exit_code = [0]

    def started_failed(failure):
        from twisted.internet.error import CannotListenError

        if acd.phase in ("stopping", "stopped"):
            return None  # a start cut short by SIGINT/SIGTERM is not a failure
        exit_code[0] = 1
        if failure.check(CannotListenError):
            err = failure.value
            log.critical("cannot listen on {addr}:{port}: {reason}", addr=err.interface or "*", port=err.port,
                         reason=str(err.socketError))
        else:
            log.failure("start failed; shutting down", failure)
        if reactor.running:
            reactor.stop()

    def start():
        log.info("callcenter {name} starting with {config} (pid {pid})", name=config.acd.name,
                 config=str(args.config), pid=os.getpid())
        acd.start().addErrback(started_failed)

    def shutting_down():
        _arm_hard_exit(acd, HARD_EXIT_AFTER_S)
        return acd.stop()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", shutting_down)
    try:
        reactor.run()
    finally:
        acd.close()
    _exit_now(exit_code[0])
    return exit_code[0]  # not reached


def _exit_now(code: int) -> None:
    """Exit without the interpreter's slow teardown of every module (seconds on a
    loaded machine, which would eat into the 5 s shutdown budget).  Everything
    that matters is already stopped; atexit handlers still run."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def _arm_hard_exit(acd, after_s: float) -> None:
    """If shutdown hangs (a stuck subsystem, a blocked reactor), kill Redis and exit 1."""

    def expire() -> None:
        try:
            sys.stderr.write(f"callcenter: shutdown took longer than {after_s} s; exiting hard\n")
            if acd.redis is not None:
                acd.redis.kill()
        finally:
            os._exit(1)

    timer = threading.Timer(after_s, expire)
    timer.daemon = True
    timer.start()


if __name__ == "__main__":
    sys.exit(main())
