"""How the store's bytes divide among repositories, and what gc would free."""

from app.ui.inventory import repository_blobs, total_size


def measure_usage(storage, names):
    """Return the store's total size, usage of the repositories named, what gc frees.

    A blob is shared when the manifests of more than one repository stand on
    it. What gc would free is the bytes of blobs that no manifest of any
    repository stands on (blobs of deleted manifests, abandoned pushes).
    """
    held = {
        name: repository_blobs(storage, name) for name in storage.list_repositories()
    }
    holders = count_holders(held.values())
    stored = set(storage.list_blobs())
    unreferenced = stored - set(holders)
    return {
        "total": total_size(storage, stored),
        "blob_count": len(stored),
        "repositories": [
            repository_usage(storage, name, held.get(name, set()), holders)
            for name in names
        ],
        "reclaimable": total_size(storage, unreferenced),
        "reclaimable_count": len(unreferenced),
    }


def count_holders(digest_sets):
    """Return, for each digest, how many of the sets hold it."""
    holders = {}
    for digests in digest_sets:
        for digest in digests:
            holders[digest] = holders.get(digest, 0) + 1
    return holders


def repository_usage(storage, name, digests, holders):
    """Return a repository's bytes, split into shared and its own."""
    shared = {digest for digest in digests if holders[digest] > 1}
    return {
        "name": name,
        "size": total_size(storage, digests),
        "shared": total_size(storage, shared),
        "unique": total_size(storage, digests - shared),
    }
