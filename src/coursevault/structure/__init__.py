"""Moodle's Backup 2.0 structure API, in Python: definitions as nested
elements fed from database sources, run by a plan of tasks into members.

See docs/structure.md for the API with the choice example.
"""
