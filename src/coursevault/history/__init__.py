"""A course's history as users see it: naming snapshots (selectors), keeping
them (retention policies) and the times both are written in.

Reads snapshot rows through the store; knows nothing of how a snapshot was
made (ingest, Moodle), so any door's snapshots are named and forgotten alike.
"""
