"""coursevault's own backup definitions: Moodle 4.5's course backup.

Each module mirrors the PHP it was read from (``backup/moodle2/*``,
``mod/*/backup/moodle2/*``) and registers through entry points like any
third-party plugin would (structure/registry.py).
"""
