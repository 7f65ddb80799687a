"""Shared helpers: the lab's template read once per set of overrides, and a simulation built from it."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from lambdalab.simulate.engine import Simulation, default_limits
from lambdalab.simulate.models import ModelSet, apply_setting
from lambdalab.simulate.stack import SimStack, load_stack

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"


@functools.lru_cache(maxsize=16)
def _stack(overrides: tuple[tuple[str, str], ...]) -> SimStack:
    return load_stack(TEMPLATE, parameter_overrides=dict(overrides))


def stack(**overrides: str) -> SimStack:
    """The lab's template with these parameter overrides (a fresh copy: tests may change it)."""
    return copy.deepcopy(_stack(tuple(sorted(overrides.items()))))


def models(*settings: str) -> ModelSet:
    out = ModelSet()
    for setting in settings:
        apply_setting(out, setting)
    return out


def simulation(
    sim_stack: SimStack, model_set: ModelSet, *, seed: int = 1, account: int = 1000, bin_s: float = 1.0
) -> Simulation:
    sim = Simulation(sim_stack, model_set, seed=seed, limits=default_limits(account), bin_s=bin_s)
    sim.prepare()
    return sim
