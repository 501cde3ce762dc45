"""The database door's test infrastructure: the reference Moodle site
(``refsite``) and the comparer of two .mbz files (``mbzcompare``).

A package (unlike the other test folders) so that ``python -m
tests.dbbackup.mbzcompare`` runs from the repository root and its modules
import each other relatively, whether pytest imports them as ``dbbackup.*``
or Python as ``tests.dbbackup.*``.
"""
