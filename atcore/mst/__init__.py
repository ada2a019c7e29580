"""The atproto Merkle Search Tree: repository tree, diffs, proofs and Sync 1.1 inversion.

Typical write path (PDS)::

    tree = MST.load(store, current_data_cid)
    commit = prepare_commit(tree, [RecordOp.create(path, record_cid), ...])
    # persist commit.new_blocks (+ records, commit block); put commit.blocks in the #commit slice
    tree.mark_stored()

Typical read path (firehose consumer)::

    prev = invert_commit(commit_data_cid, ops, car_blocks)  # must equal the event's prevData

Errors: see `atcore.mst.errors` (every one is an `MSTError`, a `ValueError`).
"""

from atcore.mst.blockstore import BlockStore, MemoryBlockStore, OverlayBlockStore
from atcore.mst.cache import NodeCache
from atcore.mst.diff import MSTDiff, diff, diff_trees
from atcore.mst.errors import (
    InvalidKeyError,
    InversionError,
    KeyExistsError,
    KeyNotFoundError,
    MalformedNodeError,
    MissingBlockError,
    MSTError,
    OpMismatchError,
    ProofError,
)
from atcore.mst.invert import PreparedCommit, invert_commit, invert_op, prepare_commit
from atcore.mst.node import (
    MAX_KEY_BYTES,
    common_prefix_len,
    decode_node,
    encode_node,
    is_valid_key,
    key_height,
)
from atcore.mst.ops import Action, RecordOp
from atcore.mst.proof import commit_proof_blocks, covering_proof, proof_blocks, verify_proof
from atcore.mst.tree import MST

__all__ = [
    "MAX_KEY_BYTES",
    "MST",
    "Action",
    "BlockStore",
    "InvalidKeyError",
    "InversionError",
    "KeyExistsError",
    "KeyNotFoundError",
    "MSTDiff",
    "MSTError",
    "MalformedNodeError",
    "MemoryBlockStore",
    "MissingBlockError",
    "NodeCache",
    "OpMismatchError",
    "OverlayBlockStore",
    "PreparedCommit",
    "ProofError",
    "RecordOp",
    "commit_proof_blocks",
    "common_prefix_len",
    "covering_proof",
    "decode_node",
    "diff",
    "diff_trees",
    "encode_node",
    "invert_commit",
    "invert_op",
    "is_valid_key",
    "key_height",
    "prepare_commit",
    "proof_blocks",
    "verify_proof",
]
