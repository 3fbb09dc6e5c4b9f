"""Named errors of the cloud code, each with a one-line message saying what to do.

cloud_sync cannot import edge_agent (the Lambda zip holds only this package, gotcha_contracts
and pymysql), so it has its own small hierarchy; the CLI turns any CloudError into a one-line
message.
"""


class CloudError(Exception):
    """Base class: ``str(err)`` is a complete one-line message."""


class CloudConfigError(CloudError):
    """A required environment variable is missing or holds a bad value."""


class EventError(CloudError):
    """The Lambda event is not the S3 event JSON the ingest handler expects."""


class PhotosNotReadyError(CloudError):
    """A manifest names photos that are not in S3 (yet): raised so Lambda retries the event."""


class DatabaseError(CloudError):
    """The database cannot be reached, or a statement failed in a way retrying will not fix."""


class ServiceUnavailableError(CloudError):
    """The vision service did not answer after every retry (recorded; the event is retried)."""


class PhotoRefusedError(CloudError):
    """The vision service refused a raw photo (a 4xx that retrying will not change)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the vision service refused the photo ({status}): {message}")
        self.status = status


class RejectedObjectError(CloudError):
    """An S3 object the ingest handler cannot accept: recorded with this reason, not retried."""
