"""Diffs between snapshots: what changed, record by record, field by field."""
