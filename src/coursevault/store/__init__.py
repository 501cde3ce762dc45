"""Content-addressed object storage: ids, packs, indexes, backends, catalog, locks.

This layer knows nothing of Moodle: it stores typed byte strings under their
blake3 ids and the small snapshot records that name a root.
"""

from coursevault.store.ids import ObjectId, ObjectType, object_id
from coursevault.store.repository import Repository

__all__ = ["ObjectId", "ObjectType", "Repository", "object_id"]
