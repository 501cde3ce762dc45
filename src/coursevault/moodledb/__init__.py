"""A Moodle site's database (SQLAlchemy Core) and file store: reading one, and
making demo ones with Moodle 4.5's schema."""
