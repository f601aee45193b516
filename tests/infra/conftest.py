"""One `modelfn build` per test session: cross-platform wheel installs are the slow part (~10 s from pip's cache)."""

from __future__ import annotations

import pytest

from modelfn_infra.build import BuildResult, build

from ..conftest import REPO


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> BuildResult:
    """template.yaml built the way `modelfn build` does it, into a temporary .aws-sam/build."""
    return build(REPO / "template.yaml", tmp_path_factory.mktemp("aws-sam") / "build", log=lambda message: None)
