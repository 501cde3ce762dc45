"""tests/dbrestore: ``coursevault restore --db`` proved on real data (issue 23).

A package, as tests/dbbackup is; its modules import tests/dbbackup's
helpers as ``dbbackup.<module>`` (pytest puts tests/ on sys.path, which
holds no __init__.py) and one another relatively.
"""
