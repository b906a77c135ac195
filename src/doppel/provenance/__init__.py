"""Provenance of what doppel synthesizes: metadata label, invisible watermark, C2PA manifest.

`label` writes and reads the metadata label (as `doppel.provenance` always did),
`watermark` marks and reads the pixels, `c2pa` signs and verifies a manifest, and
`writer` puts all three on an output inside its atomic write and `check` reads them back.
"""
from .label import MARKER, PNG_KEY, label, read_label, video_metadata, write_labeled_image  # noqa: F401
from .writer import video_writer, write_image  # noqa: F401
from .check import MarkReader, check, lines as check_lines  # noqa: F401,E402
