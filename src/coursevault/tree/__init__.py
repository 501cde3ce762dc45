"""The manifest tree: how any document or file is kept in the store, and read back.

Node encodings, list and record-group building, file chunking, the XML
cutter and renderer, the element walker and the archive-tree reader.  It
knows the store (ids, the tree envelope, a write session as an object sink)
and nothing of Moodle's archive layout: what a format needs rendered (the
``.ARCHIVE_INDEX``) is passed in.  So a second door -- backups read from a
database rather than an archive -- builds the same trees with the same
code, and diff and restore read them without importing ingest.
"""
