"""The PDS's repositories: preparing writes, committing them, and reading repos back.

    prepare.WritePreparer   request bodies -> validated `PreparedWrite`s (rkeys, $type, lexicons)
    writer.RepoWriter       commits: MST update, signed commit, blocks, record index, blobs and the
                            sequenced `#commit` event, all in one transaction (group commit)
    reader                  getRecord / listRecords / describeRepo queries, CAR export
    backlinks, conflicts    the links that make a like/repost/follow/block a duplicate, and the
                            deletes of older duplicates a createRecord carries
    storage                 the block cache the MST reads through

Errors (`pds.repo.errors`, all `RepoError`, a `ValueError`; the API maps them to XRPC errors):

    RepoError
    ├── InvalidWrite        bad record, rkey, collection, $type, size, or an impossible op (400)
    │   └── BlobNotFound    a record references a blob this repo does not have (400)
    ├── InvalidSwap         swapCommit / swapRecord did not match (400 InvalidSwap)
    ├── RepoNotFound        the DID has no repository here
    └── AccountUnavailable  the account is taken down or deactivated (AccountTakedown, ...)
"""
