"""The conformance corpus: every project under projects/ deploys into one local cloud and meets its expectation.

One `lambdalab up` for the whole module (started on a free port), each project deployed into it with
`lambdalab deploy` under its own stack name. How to add a project: README.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.runner import Project, discover, run_project
from tests.support.cloud import RunningCloud, local_cloud

pytestmark = pytest.mark.integration

PROJECTS = discover()
# AWS's documented waits (async retries: 1 and 2 minutes) scaled down so destinations are reached in seconds.
TIME_SCALE = "0.01"


def _param(project: Project) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=project.xfail)] if project.xfail else []
    return pytest.param(project, id=project.name, marks=marks)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    with local_cloud(None, tmp_path_factory.mktemp("conformance-cloud"), extra=["--time-scale", TIME_SCALE]) as running:
        yield running


def test_the_corpus_is_large_enough() -> None:
    assert len(PROJECTS) >= 30, f"issue 12 asks for at least 30 projects; there are {len(PROJECTS)}"


@pytest.mark.parametrize("project", [_param(p) for p in PROJECTS])
def test_project(cloud: RunningCloud, project: Project, tmp_path: Path) -> None:
    run_project(cloud, project, tmp_path)
