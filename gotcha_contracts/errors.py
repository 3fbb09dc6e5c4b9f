"""Named errors of the shared contracts.

Why its own module: the S3 layout, the manifest check and the manifest builder all raise the
same error, and the device and the cloud each catch it without importing the other's errors.
"""


class ManifestError(ValueError):
    """A manifest (or report key part) that must not be accepted; ``reason`` names the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
