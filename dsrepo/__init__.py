"""dsrepo: version control for datasets.

from dsrepo import Repository
repo = Repository.init("data")
repo.add(".")
repo.commit("first version", metadata={"source": "s3://raw/2026-11"})
"""

from __future__ import annotations

from dsrepo.dvcs.repository import Repository
from dsrepo.errors import DsrepoError

__all__ = ["DsrepoError", "Repository", "__version__"]
__version__ = "0.1.0"
