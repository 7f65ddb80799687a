"""Every environment-variable name and default of the lab in one place.

Resolution order everywhere: explicit argument → environment variable → default here.
"""

from __future__ import annotations

import os
from pathlib import Path

# --- lambdalab's own settings -------------------------------------------------------------------------------------
ENV_PORT = "LAMBDALAB_PORT"
ENV_RUN_DIR = "LAMBDALAB_RUN_DIR"
ENV_TIME_SCALE = "LAMBDALAB_TIME_SCALE"
ENV_KEEP_ALIVE = "LAMBDALAB_KEEP_ALIVE_SECONDS"
ENV_ACCOUNT_CONCURRENCY = "LAMBDALAB_ACCOUNT_CONCURRENCY"
# Runtimes, function builds, measured import costs and unpacked .zip code packages (else $XDG_CACHE_HOME/lambdalab,
# else ~/.cache/lambdalab: see cache_dir()).
ENV_CACHE_DIR = "LAMBDALAB_CACHE_DIR"
ENV_INIT_CONCURRENCY = "LAMBDALAB_INIT_CONCURRENCY"  # INITs running function code at once (default below)

DEFAULT_PORT = 4566
DEFAULT_HOST = "127.0.0.1"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_RUN_ROOT = ".lambdalab/runs"
# Every AWS-documented wait (async retry delays, maximum event age, metric periods) is multiplied by this locally.
DEFAULT_TIME_SCALE = 1.0
# AWS does not document how long an idle environment lives; minutes is what is observed.
DEFAULT_KEEP_ALIVE_SECONDS = 600.0

# Fake credentials the local cloud hands out and accepts. Never the host's.
FAKE_ACCESS_KEY_ID = "AKIALAMBDALABLOCAL00"
FAKE_SECRET_ACCESS_KEY = "lambdalab-local-secret-key-not-a-real-one"  # noqa: S105 - a documented fake
FAKE_SESSION_TOKEN = "lambdalab-local-session-token"  # noqa: S105 - a documented fake

# --- AWS limits and defaults the local cloud reproduces (see ../shared/FIDELITY.md) ------------------------------
ACCOUNT_CONCURRENCY = 1000
UNRESERVED_MINIMUM = 100
SCALE_BURST = 1000  # new execution environments per function ...
SCALE_PERIOD_SECONDS = 10.0  # ... every this many seconds, refilled continuously
ON_DEMAND_INIT_CAP_SECONDS = 10.0
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 1024 * 1024  # 1 MB since Oct 2025; 256 KB before
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_MB = 128


def cache_dir() -> Path:
    """Where the lab keeps what it builds once per machine: `LAMBDALAB_CACHE_DIR`, else `$XDG_CACHE_HOME/lambdalab`,
    else `~/.cache/lambdalab`."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lambdalab"


def default_init_concurrency() -> int:
    """How many INITs may run function code at once: one core is kept for the gateway, the warm path and the load
    generator; the rest run INITs (at least one)."""
    return max(1, (os.cpu_count() or 2) - 1)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(value: str | None, *, default: bool = False, name: str = "value") -> bool:
    """The one place a boolean setting is parsed: "false" is false, an unknown word is an error."""
    if value is None:
        return default
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (use true or false)")


def env_float(name: str, default: float) -> float:
    """A float from the environment, or the default; a malformed value names the variable."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
