"""Shared fixtures: the reference samples (beside the clone) and schema validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from sipresence.documents.xml import schema

#: ../shared/reference/samples relative to the repository root (CI puts shared beside
#: the clone), computed from this file: tests/unit/documents/conftest.py.
SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "reference" / "samples"


@pytest.fixture(scope="session")
def sample() -> Callable[[str], bytes]:
    """Read a reference sample by file name."""

    def read(name: str) -> bytes:
        return (SAMPLES / name).read_bytes()

    return read


def validation_errors(document: bytes) -> str:
    """'' when *document* is valid against pidf_schemas/presence-bundle.xsd, else the log."""
    bundle = schema()
    if bundle.validate(etree.fromstring(document)):
        return ""
    return str(bundle.error_log)


@pytest.fixture(scope="session")
def valid() -> Callable[[bytes], bool]:
    """Assert that a document is valid against the packaged bundle schema.

    Session-scoped so that hypothesis tests can use it too.
    """

    def check(document: bytes) -> bool:
        errors = validation_errors(document)
        assert not errors, errors + "\n" + document.decode()
        return True

    return check
