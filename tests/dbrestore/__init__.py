"""Tests of ``restore --db`` (a package, so its modules import each other
relatively, as tests/dbbackup's do)."""
