"""The one error an image import raises."""


class ImageImportError(Exception):
    """An archive that cannot be imported; the message says why, in one line."""
