"""Named exceptions of the library.

Every error a user can cause (bad photo, bad config, broken model, full disk) is one of these,
carrying a one-line message that says what is wrong and what to do. The CLI turns them into
one-line messages and exit codes; nothing in the library swallows them.
"""


class GotchaError(Exception):
    """Base class: ``str(err)`` is a complete one-line message for a user."""


class ConfigError(GotchaError):
    """The configuration file or a GOTCHA_* variable holds a bad key or value."""


class BadInputError(GotchaError):
    """A photo (or other input file) cannot be used: corrupt, truncated, not an image, too big."""


class ModelError(GotchaError):
    """A model file is missing, damaged, has the wrong checksum or the wrong input/output shape."""


class ModelMissingError(ModelError):
    """A model's file is not on this machine (as opposed to present but broken): optional
    models may be left out on this error alone."""


class StoreError(GotchaError):
    """The local store cannot be written (locked, full disk, failed integrity check)."""


class DamagedStoreError(StoreError):
    """The database file is damaged, emptied or gone while the photo store still holds
    evidence: nothing runs on it; ``gotcha store recover`` rebuilds it and keeps the old file."""


class UploadError(GotchaError):
    """An upload to the object store failed in a way retrying will not fix."""
