"""The moodle2 backup format: archive containers, tar rules, XML rules, backup info.

This layer knows nothing of storage: it reads and writes archives and XML as
streams.  See ../shared/moodle2-format.md and docs/architecture.md.
"""
