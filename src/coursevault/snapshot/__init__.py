"""Snapshots: turning backups into manifest trees in the store, and reading them back.

Joins the format layer (moodle2) and the storage layer (store): the chunkers
here build the Merkle tree of a course -- archive, members, XML documents,
element records, lists, file chunks -- and the renderers walk it back.
"""
