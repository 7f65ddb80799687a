"""Load sample events from events/: the one loader every test uses."""

import json
import logging
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def event_path(name: str) -> Path:
    """The path of events/<name> (".json" added when missing); a missing file raises FileNotFoundError."""
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    if not path.is_file():
        raise FileNotFoundError(f"no sample event {path.name} in {EVENTS_DIR}")
    return path


def load_event(name: str) -> Any:
    """A fresh copy of the parsed sample event events/<name>."""
    return json.loads(event_path(name).read_text(encoding="utf-8"))
