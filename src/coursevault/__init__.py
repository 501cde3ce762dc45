"""coursevault: an incremental, content-addressed history of Moodle course backups."""

__version__ = "0.1.0"
