"""Reading a Moodle site: its database (SQLAlchemy Core) and its file store."""
