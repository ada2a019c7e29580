"""Every NSID the services name, in one place (no NSID string literals anywhere else)."""

# ruff: noqa: S105  (names like "createAppPassword" are method ids, not secrets)

from __future__ import annotations

from typing import Final


def xrpc_path(nsid: str) -> str:
    """The HTTP path of an XRPC method."""
    return f"/xrpc/{nsid}"


# -- com.atproto.server -----------------------------------------------------------------------
SERVER_DESCRIBE_SERVER: Final = "com.atproto.server.describeServer"
SERVER_CREATE_ACCOUNT: Final = "com.atproto.server.createAccount"
SERVER_CREATE_SESSION: Final = "com.atproto.server.createSession"
SERVER_GET_SESSION: Final = "com.atproto.server.getSession"
SERVER_REFRESH_SESSION: Final = "com.atproto.server.refreshSession"
SERVER_DELETE_SESSION: Final = "com.atproto.server.deleteSession"
SERVER_CREATE_APP_PASSWORD: Final = "com.atproto.server.createAppPassword"
SERVER_LIST_APP_PASSWORDS: Final = "com.atproto.server.listAppPasswords"
SERVER_REVOKE_APP_PASSWORD: Final = "com.atproto.server.revokeAppPassword"
SERVER_GET_SERVICE_AUTH: Final = "com.atproto.server.getServiceAuth"
SERVER_CHECK_ACCOUNT_STATUS: Final = "com.atproto.server.checkAccountStatus"
SERVER_ACTIVATE_ACCOUNT: Final = "com.atproto.server.activateAccount"
SERVER_DEACTIVATE_ACCOUNT: Final = "com.atproto.server.deactivateAccount"
SERVER_DELETE_ACCOUNT: Final = "com.atproto.server.deleteAccount"
SERVER_REQUEST_ACCOUNT_DELETE: Final = "com.atproto.server.requestAccountDelete"
SERVER_CREATE_INVITE_CODE: Final = "com.atproto.server.createInviteCode"
SERVER_GET_ACCOUNT_INVITE_CODES: Final = "com.atproto.server.getAccountInviteCodes"
SERVER_CONFIRM_EMAIL: Final = "com.atproto.server.confirmEmail"
SERVER_REQUEST_EMAIL_CONFIRMATION: Final = "com.atproto.server.requestEmailConfirmation"
SERVER_REQUEST_EMAIL_UPDATE: Final = "com.atproto.server.requestEmailUpdate"
SERVER_UPDATE_EMAIL: Final = "com.atproto.server.updateEmail"
SERVER_RESERVE_SIGNING_KEY: Final = "com.atproto.server.reserveSigningKey"
SERVER_REQUEST_PASSWORD_RESET: Final = "com.atproto.server.requestPasswordReset"
SERVER_RESET_PASSWORD: Final = "com.atproto.server.resetPassword"

# -- com.atproto.identity ---------------------------------------------------------------------
IDENTITY_RESOLVE_HANDLE: Final = "com.atproto.identity.resolveHandle"
IDENTITY_UPDATE_HANDLE: Final = "com.atproto.identity.updateHandle"
IDENTITY_REQUEST_PLC_SIGNATURE: Final = "com.atproto.identity.requestPlcOperationSignature"
IDENTITY_SIGN_PLC_OPERATION: Final = "com.atproto.identity.signPlcOperation"
IDENTITY_SUBMIT_PLC_OPERATION: Final = "com.atproto.identity.submitPlcOperation"
IDENTITY_GET_RECOMMENDED_DID_CREDENTIALS: Final = (
    "com.atproto.identity.getRecommendedDidCredentials"
)

# -- com.atproto.repo -------------------------------------------------------------------------
REPO_CREATE_RECORD: Final = "com.atproto.repo.createRecord"
REPO_PUT_RECORD: Final = "com.atproto.repo.putRecord"
REPO_DELETE_RECORD: Final = "com.atproto.repo.deleteRecord"
REPO_APPLY_WRITES: Final = "com.atproto.repo.applyWrites"
REPO_GET_RECORD: Final = "com.atproto.repo.getRecord"
REPO_LIST_RECORDS: Final = "com.atproto.repo.listRecords"
REPO_DESCRIBE_REPO: Final = "com.atproto.repo.describeRepo"
REPO_UPLOAD_BLOB: Final = "com.atproto.repo.uploadBlob"
REPO_LIST_MISSING_BLOBS: Final = "com.atproto.repo.listMissingBlobs"
REPO_IMPORT_REPO: Final = "com.atproto.repo.importRepo"
REPO_STRONG_REF: Final = "com.atproto.repo.strongRef"

# -- com.atproto.sync -------------------------------------------------------------------------
SYNC_GET_REPO: Final = "com.atproto.sync.getRepo"
SYNC_GET_LATEST_COMMIT: Final = "com.atproto.sync.getLatestCommit"
SYNC_GET_RECORD: Final = "com.atproto.sync.getRecord"
SYNC_GET_BLOCKS: Final = "com.atproto.sync.getBlocks"
SYNC_GET_BLOB: Final = "com.atproto.sync.getBlob"
SYNC_LIST_BLOBS: Final = "com.atproto.sync.listBlobs"
SYNC_LIST_REPOS: Final = "com.atproto.sync.listRepos"
SYNC_GET_REPO_STATUS: Final = "com.atproto.sync.getRepoStatus"
SYNC_SUBSCRIBE_REPOS: Final = "com.atproto.sync.subscribeRepos"
SYNC_REQUEST_CRAWL: Final = "com.atproto.sync.requestCrawl"

# -- com.atproto.admin ------------------------------------------------------------------------
ADMIN_GET_ACCOUNT_INFO: Final = "com.atproto.admin.getAccountInfo"
ADMIN_UPDATE_SUBJECT_STATUS: Final = "com.atproto.admin.updateSubjectStatus"
ADMIN_GET_SUBJECT_STATUS: Final = "com.atproto.admin.getSubjectStatus"
ADMIN_UPDATE_ACCOUNT_HANDLE: Final = "com.atproto.admin.updateAccountHandle"
ADMIN_UPDATE_ACCOUNT_PASSWORD: Final = "com.atproto.admin.updateAccountPassword"
ADMIN_DELETE_ACCOUNT: Final = "com.atproto.admin.deleteAccount"
ADMIN_SEND_EMAIL: Final = "com.atproto.admin.sendEmail"
# Subject types of com.atproto.admin.defs (the `$type` of a moderation subject).
ADMIN_DEFS_REPO_REF: Final = "com.atproto.admin.defs#repoRef"
ADMIN_DEFS_REPO_BLOB_REF: Final = "com.atproto.admin.defs#repoBlobRef"

# -- app.bsky ---------------------------------------------------------------------------------
BSKY_ACTOR_GET_PREFERENCES: Final = "app.bsky.actor.getPreferences"
BSKY_ACTOR_PUT_PREFERENCES: Final = "app.bsky.actor.putPreferences"
BSKY_ACTOR_GET_PROFILE: Final = "app.bsky.actor.getProfile"
BSKY_ACTOR_GET_PROFILES: Final = "app.bsky.actor.getProfiles"
BSKY_ACTOR_DEFS: Final = "app.bsky.actor.defs"
BSKY_ACTOR_PROFILE: Final = "app.bsky.actor.profile"
BSKY_FEED_POST: Final = "app.bsky.feed.post"
BSKY_FEED_LIKE: Final = "app.bsky.feed.like"
BSKY_FEED_REPOST: Final = "app.bsky.feed.repost"
BSKY_FEED_GENERATOR: Final = "app.bsky.feed.generator"
BSKY_FEED_GET_FEED: Final = "app.bsky.feed.getFeed"
BSKY_FEED_GET_FEED_SKELETON: Final = "app.bsky.feed.getFeedSkeleton"
BSKY_FEED_DESCRIBE_FEED_GENERATOR: Final = "app.bsky.feed.describeFeedGenerator"
BSKY_EMBED_IMAGES: Final = "app.bsky.embed.images"
BSKY_EMBED_EXTERNAL: Final = "app.bsky.embed.external"
BSKY_EMBED_RECORD: Final = "app.bsky.embed.record"
BSKY_RICHTEXT_FACET: Final = "app.bsky.richtext.facet"
BSKY_GRAPH_FOLLOW: Final = "app.bsky.graph.follow"
BSKY_GRAPH_BLOCK: Final = "app.bsky.graph.block"
BSKY_NAMESPACE: Final = "app.bsky"
CHAT_NAMESPACE: Final = "chat.bsky"

# -- Skyspot and the community location vocabulary --------------------------------------------
SKYSPOT_CHECKIN: Final = "app.skyspot.checkin"
LOCATION_GEO: Final = "community.lexicon.location.geo"
LOCATION_ADDRESS: Final = "community.lexicon.location.address"
LOCATION_FSQ: Final = "community.lexicon.location.fsq"
LOCATION_HTHREE: Final = "community.lexicon.location.hthree"
