"""The RFC XML Schemas (PIDF and its extensions) shipped as package data.

They come from ../shared/reference/schemas/patched (see SOURCES.md): the RFC texts
with the minimal fixes that let them compile offline.  Everything the agent emits is
validated against them in the tests.
"""

from importlib.resources import files
from importlib.resources.abc import Traversable


def schema_file(name: str) -> Traversable:
    """Return the packaged schema file called *name* (for example ``pidf.xsd``)."""
    return files(__name__).joinpath(name)
