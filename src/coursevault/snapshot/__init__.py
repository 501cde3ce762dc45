"""Snapshots: Moodle backups into manifest trees in the store.

Joins the format layer (moodle2) to the tree layer (coursevault.tree):
``ingest.py`` reads an archive member by member and builds its snapshot with
the tree's chunkers.  Reading trees back is the tree layer's job, so diff
and restore do not import this package.
"""
