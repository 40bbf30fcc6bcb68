"""Async client of TA's Open API for user clusters and tags.

`TAClient` has one method per endpoint; `IdSource` gives the ids of an upload
and `UploadOutcome` reports what was cleaned and sent. Errors are in
`ta_cohort_mcp.client.errors`, whose docstring draws their tree.
"""

from ta_cohort_mcp.client.api import TAClient
from ta_cohort_mcp.client.errors import (
    TAAPIError,
    TAConnectionError,
    TAError,
    TAHTTPError,
    TARateLimitError,
    TAResponseFormatError,
    TATimeoutError,
    TAUsageError,
    TAWriteUncertainError,
)
from ta_cohort_mcp.client.upload import IdSource, UploadOutcome

__all__ = [
    "IdSource",
    "TAAPIError",
    "TAClient",
    "TAConnectionError",
    "TAError",
    "TAHTTPError",
    "TARateLimitError",
    "TAResponseFormatError",
    "TATimeoutError",
    "TAUsageError",
    "TAWriteUncertainError",
    "UploadOutcome",
]
