"""The `lambdalab` command: `up` (the local cloud), `env` (exports), `traces` (the cold-start report), `demo`,
`simulate` and `tune` (the same template and rules on a virtual clock)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from lambdalab import __version__, constants
from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)
LOCAL_LIMITS_EVERY_S = 10.0  # how often `lambdalab up` says when this machine, not Lambda, made calls wait


def env_lines(port: int, host: str = constants.DEFAULT_HOST, region: str = constants.DEFAULT_REGION) -> list[str]:
    """The exports that point the AWS CLI, boto3 and the stack's scripts at the local cloud, with fake credentials."""
    return [
        f"export AWS_ENDPOINT_URL=http://{host}:{port}",
        f"export AWS_ACCESS_KEY_ID={constants.FAKE_ACCESS_KEY_ID}",
        f"export AWS_SECRET_ACCESS_KEY={constants.FAKE_SECRET_ACCESS_KEY}",
        f"export AWS_SESSION_TOKEN={constants.FAKE_SESSION_TOKEN}",
        f"export AWS_REGION={region}",
        f"export AWS_DEFAULT_REGION={region}",
        "unset AWS_PROFILE",
    ]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return value


def _default_port() -> int:
    raw = os.environ.get(constants.ENV_PORT)
    if raw is None:
        return constants.DEFAULT_PORT
    try:
        return _port(raw)
    except argparse.ArgumentTypeError as exc:
        raise UserError(f"{constants.ENV_PORT}: {exc}") from None


_COMMANDS = ("up", "deploy", "env", "traces", "demo", "simulate", "tune")


def _command_of(argv: Sequence[str]) -> str | None:
    """The command `argv` names before any other positional argument, or None if it names none for sure."""
    i = 0
    while i < len(argv):
        if argv[i] == "--log-level":
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return argv[i] if argv[i] in _COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser. With `only`, the command about to run, the arguments of the others that live in their
    own modules (traces, demo, simulate, tune) are left out: importing those costs about half a second of CPU on every
    `lambdalab up`, and `lambdalab <command> --help` needs only that command's arguments."""
    parser = argparse.ArgumentParser(prog="lambdalab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lambdalab {__version__}")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the local cloud and deploy a SAM template to it")
    up.add_argument("--template", type=Path, default=Path("template.yaml"), help="SAM template (default template.yaml)")
    up.add_argument("--no-template", action="store_true", help="start with nothing deployed")
    up.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"listen port on 127.0.0.1 (default {constants.DEFAULT_PORT}; 0 picks a free one)",
    )
    up.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", help="template parameters")
    up.add_argument("--stack-name", default=None, help="stack name (default: samconfig.toml's, else lambdalab)")
    up.add_argument(
        "--time-scale",
        type=_positive_float,
        default=None,
        help="multiply AWS's documented waits (async retries, event age, metric periods, schedules) by this; "
        "1 = as on AWS",
    )
    up.add_argument("--account-concurrency", type=int, default=constants.ACCOUNT_CONCURRENCY)
    up.add_argument(
        "--keep-alive",
        type=_positive_float,
        default=None,
        help=f"seconds an idle environment lives (default {constants.DEFAULT_KEEP_ALIVE_SECONDS:.0f})",
    )
    up.add_argument("--run-root", type=Path, default=Path(constants.DEFAULT_RUN_ROOT), help="where run directories go")

    deploy = sub.add_parser("deploy", help="deploy another SAM template into a running local cloud (as another stack)")
    deploy.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="SAM template (default template.yaml)"
    )
    deploy.add_argument("--stack-name", default=None, help="stack name (default: samconfig.toml's, else the folder's)")
    deploy.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", help="template parameters")
    deploy.add_argument(
        "--port", type=_port, default=None, help=f"the local cloud's port (default {constants.DEFAULT_PORT})"
    )

    env = sub.add_parser("env", help="print the export lines that point the AWS CLI and boto3 at the local cloud")
    env.add_argument("--port", type=_port, default=None)

    traces = sub.add_parser(
        "traces", help="cold-start report from X-Ray traces or CloudWatch Logs (AWS or local), or a run directory"
    )
    if only in (None, "traces"):
        from lambdalab.traces.cli import add_arguments

        add_arguments(traces)

    demo = sub.add_parser("demo", help="run the base and provisioned state machines side by side on the local cloud")
    if only in (None, "demo"):
        from lambdalab.demo import add_arguments as add_demo_arguments

        add_demo_arguments(demo)

    simulate = sub.add_parser(
        "simulate", help="run the template's functions on a virtual clock with the local cloud's rules, at any scale"
    )
    if only in (None, "simulate"):
        from lambdalab.simulate.cli import add_arguments as add_simulate_arguments

        add_simulate_arguments(simulate)

    tune_help = "sweep settings of the template over one load; the outcomes, the Pareto front and a recommendation"
    if only in (None, "tune"):
        from lambdalab.simulate.tune import add_arguments as add_tune_arguments
        from lambdalab.simulate.tune import epilog as tune_epilog

        tune = sub.add_parser(
            "tune", help=tune_help, epilog=tune_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter
        )
        add_tune_arguments(tune)
    else:
        sub.add_parser("tune", help=tune_help)
    return parser


def _cmd_env(args: argparse.Namespace) -> int:
    port = args.port if args.port is not None else _default_port()
    print("\n".join(env_lines(port)))
    return 0


def _cmd_deploy(args: argparse.Namespace) -> int:
    from lambdalab.deploy.remote import deploy_remote
    from lambdalab.deploy.template import parse_parameter_overrides

    if not args.template.is_file():
        raise UserError(f"template {args.template} not found (pass --template PATH)")
    port = args.port if args.port is not None else _default_port()
    answer = deploy_remote(
        f"http://{constants.DEFAULT_HOST}:{port}",
        args.template,
        stack_name=args.stack_name,
        overrides=parse_parameter_overrides(args.parameter_overrides),
    )
    for warning in answer.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"deployed stack {answer.get('stack_name')}: {answer.get('summary')}", file=sys.stderr)
    for key, value in (answer.get("outputs") or {}).items():
        print(f"{key}\t{value}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    template: Path | None = None if args.no_template else args.template
    if template is not None and not template.is_file():
        raise UserError(f"template {template} not found (pass --template PATH, or --no-template)")
    try:
        time_scale = args.time_scale or constants.env_float(constants.ENV_TIME_SCALE, constants.DEFAULT_TIME_SCALE)
        keep_alive = args.keep_alive or constants.env_float(
            constants.ENV_KEEP_ALIVE, constants.DEFAULT_KEEP_ALIVE_SECONDS
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.account_concurrency < constants.UNRESERVED_MINIMUM:
        raise UserError(f"--account-concurrency must be at least {constants.UNRESERVED_MINIMUM}")
    from lambdalab.deploy.deployer import parse_parameter_overrides
    from lambdalab.server import CloudConfig, LocalCloud

    config = CloudConfig(
        port=args.port if args.port is not None else _default_port(),
        template=template,
        parameter_overrides=parse_parameter_overrides(args.parameter_overrides),
        stack_name=args.stack_name,
        run_root=args.run_root,
        time_scale=time_scale,
        account_concurrency=args.account_concurrency,
        keep_alive_s=keep_alive,
    )
    return _run_loop(_serve(LocalCloud(config)))


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop (libuv's event loop: about twice asyncio's throughput on loopback HTTP) where it installs."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; platforms without a wheel fall back
        return asyncio.run(main)
    return uvloop.run(main)


async def _serve(cloud: object) -> int:
    from lambdalab.server import LocalCloud, collector_paused_while_starting

    assert isinstance(cloud, LocalCloud)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with collector_paused_while_starting():
            await cloud.start()
    except OSError as exc:
        await cloud.stop()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {cloud.config.port} is in use; pass --port N (0 picks a free one)") from None
        raise
    except BaseException:
        await cloud.stop()
        raise
    port = int(cloud.url.rsplit(":", 1)[1])
    for warning in cloud.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if cloud.config.time_scale != 1.0:
        print(
            f"note: AWS's documented waits are scaled by {cloud.config.time_scale:g} locally "
            "(async retries, event age, metric periods, batching windows, record age); schedules (EventBridge "
            f"Scheduler, scheduled rules) run on a clock {1 / cloud.config.time_scale:g} times as fast as real time",
            file=sys.stderr,
        )
    for name, stack in cloud.stacks.items():
        for difference in stack.known_differences:
            print(f"note: {difference}", file=sys.stderr)
        print(f"deployed stack {name}: {stack.summary()}", file=sys.stderr)
    print(f"ready {cloud.url}", flush=True)
    print("\n".join(env_lines(port)), flush=True)
    if cloud.run_dir is not None:
        print(f"# run directory: {cloud.run_dir}", flush=True)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=LOCAL_LIMITS_EVERY_S)
        notice = cloud.telemetry.local_limits.take(LOCAL_LIMITS_EVERY_S) if cloud.telemetry is not None else None
        if notice is not None:
            print(notice, file=sys.stderr, flush=True)
    print("stopping", file=sys.stderr, flush=True)
    await cloud.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "env":
            return _cmd_env(args)
        if args.command == "up":
            return _cmd_up(args)
        if args.command == "deploy":
            return _cmd_deploy(args)
        if args.command == "traces":
            from lambdalab.traces.cli import run

            return run(args)
        if args.command == "demo":
            from lambdalab.demo import run as run_demo

            return run_demo(args)
        if args.command == "simulate":
            from lambdalab.simulate.cli import run as run_simulate

            return run_simulate(args)
        if args.command == "tune":
            from lambdalab.simulate.tune import run as run_tune

            return run_tune(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
