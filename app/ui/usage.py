"""How the store's bytes divide among repositories, and what gc would free."""

from app.ui.inventory import can_be_read, repository_blobs, total_size


def measure_usage(storage, names):
    """Return the size of the repositories named, their usage, and what gc frees.

    Only the repositories named count, so that what a visitor may not pull
    leaves no trace: a blob is shared when the manifests of more than one of
    them stand on it, and the total is the bytes of the blobs they hold. Only
    when ``names`` holds every repository (the whole store) is the total the
    store's, and what gc would free told: the bytes of blobs that no manifest of any
    repository stands on (blobs of deleted manifests, abandoned pushes).
    """
    whole_store = set(names) >= set(storage.list_repositories())
    # What cannot be read is left out, as the repositories page leaves it out.
    names = [name for name in names if can_be_read(storage, name)]
    held = {name: repository_blobs(storage, name) for name in names}
    holders = count_holders(held.values())
    stored = set(storage.list_blobs()) if whole_store else set(holders)
    usage = {
        "whole_store": whole_store,
        "total": total_size(storage, stored),
        "blob_count": len(stored),
        "repositories": [
            repository_usage(storage, name, held[name], holders) for name in names
        ],
        "reclaimable": None,
        "reclaimable_count": None,
    }
    if whole_store:
        unreferenced = stored - set(holders)
        usage["reclaimable"] = total_size(storage, unreferenced)
        usage["reclaimable_count"] = len(unreferenced)
    return usage


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
