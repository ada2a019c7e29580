"""Everything a request handler needs, built once at startup: `AppContext` under `CONTEXT`.

`build_context` opens the database (and migrates it), the shared HTTP session, the resolvers,
the PLC client, the blob store, the lexicon catalog and the service proxy (one of each for every
API module), and wires the auth, session and account services on top;
`close_context` releases them in reverse. `pds.app` runs both around the application's life, so
`request.app[CONTEXT]` (or `context_of(request)`) is always the fully built context.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web

from atcore.identity.handles import HandleResolver
from atcore.identity.resolver import DidResolver
from atcore.lexicon import Catalog
from atcore.syntax import Did
from pds.accounts import AccountManager
from pds.auth.sessions import SessionManager
from pds.auth.tokens import TokenIssuer
from pds.auth.verifier import AuthVerifier
from pds.blobstore import BlobStore, BlobStoreConfig, blobstore_from_config
from pds.db import accounts as account_queries
from pds.db.engine import Database
from pds.email_address import EmailAddresses
from pds.email_codes import EmailCodes
from pds.handles import HandlePolicy
from pds.mailer import LogMailer, Mailer
from pds.password_reset import PasswordResets
from pds.plc_client import PlcClient
from pds.proxy import ServiceProxy, proxy_config
from pds.ratelimit import RateLimiter
from pds.repo.writer import RepoWriter
from pds.sequencer import Sequencer
from pds.settings import PdsSettings


@dataclass(slots=True)
class AppContext:
    settings: PdsSettings
    db: Database
    http: aiohttp.ClientSession
    did_resolver: DidResolver
    handle_resolver: HandleResolver
    plc: PlcClient
    blobstore: BlobStore
    sequencer: Sequencer
    repo_writer: RepoWriter
    tokens: TokenIssuer
    auth: AuthVerifier
    sessions: SessionManager
    accounts: AccountManager
    email_codes: EmailCodes
    """The single-use mailed codes of every purpose (`pds.email_codes`)."""
    mailer: Mailer
    password_resets: PasswordResets
    email_addresses: EmailAddresses
    rate_limiter: RateLimiter
    catalog: Catalog
    """The lexicons under `LEXICON_DIR`: write validation and app.bsky parameter checks."""
    proxy: ServiceProxy
    """Relays calls to the AppView and to services named by `atproto-proxy`."""
    resources: AsyncExitStack = field(default_factory=AsyncExitStack)
    """Closes what `build_context` opened (see `close_context`)."""


CONTEXT: Final = web.AppKey("pds_context", AppContext)
LEXICON_DIR: Final = Path(__file__).resolve().parents[1] / "lexicons"


def context_of(request: web.Request) -> AppContext:
    return request.app[CONTEXT]


async def build_context(settings: PdsSettings, rate_limiter: RateLimiter) -> AppContext:
    """Open everything; if any step fails, what was already opened is closed again."""
    blob_config = BlobStoreConfig.from_env(
        settings.blobstore_env, default_disk_location=settings.blobstore_disk_location
    )
    async with AsyncExitStack() as resources:
        db = Database(settings.sqlite_path)
        resources.push_async_callback(db.close)
        await db.migrate()
        http = aiohttp.ClientSession()
        resources.push_async_callback(http.close)
        blobstore = blobstore_from_config(blob_config)
        resources.push_async_callback(blobstore.close)
        sequencer = Sequencer(db)
        repo_writer = RepoWriter(sequencer, blobstore)
        resources.push_async_callback(repo_writer.close)
        catalog = await asyncio.to_thread(Catalog.from_directory, LEXICON_DIR)
        ctx = _wire(
            settings=settings,
            rate_limiter=rate_limiter,
            db=db,
            http=http,
            blobstore=blobstore,
            sequencer=sequencer,
            repo_writer=repo_writer,
            catalog=catalog,
        )
        resources.push_async_callback(ctx.proxy.close)  # its sessions open on first use
        ctx.resources = resources.pop_all()
        return ctx


def _wire(
    *,
    settings: PdsSettings,
    rate_limiter: RateLimiter,
    db: Database,
    http: aiohttp.ClientSession,
    blobstore: BlobStore,
    sequencer: Sequencer,
    repo_writer: RepoWriter,
    catalog: Catalog,
) -> AppContext:
    """The services on top of the opened resources (only the proxy needs closing)."""
    # Loopback did:web and plain-HTTP handle lookups only in dev mode (local stacks, tests).
    did_resolver = DidResolver(
        session=http, plc_url=settings.did_plc_url, allow_http_loopback=settings.dev_mode
    )
    handle_resolver = HandleResolver(session=http, allow_plain_http=settings.dev_mode)
    plc = PlcClient(http, settings.did_plc_url)
    tokens = TokenIssuer(settings.jwt_secret, settings.service_did)

    async def find_account(did: Did) -> account_queries.AccountRow | None:
        async with db.read() as conn:
            return await account_queries.get_account(conn, did)

    accounts = AccountManager(
        db=db,
        plc=plc,
        rotation_key=settings.plc_rotation_keypair,
        public_url=settings.public_url,
        handles=HandlePolicy(settings.service_handle_domains, handle_resolver),
        tokens=tokens,
        invite_required=settings.invite_required,
        repo_writer=repo_writer,
        sequencer=sequencer,
        blobstore=blobstore,
    )
    mailer = LogMailer()
    email_codes = EmailCodes(db)
    return AppContext(
        settings=settings,
        db=db,
        http=http,
        did_resolver=did_resolver,
        handle_resolver=handle_resolver,
        plc=plc,
        blobstore=blobstore,
        sequencer=sequencer,
        repo_writer=repo_writer,
        tokens=tokens,
        auth=AuthVerifier(
            tokens=tokens,
            admin_password=settings.admin_password,
            service_did=settings.service_did,
            resolver=did_resolver,
            find_account=find_account,
        ),
        sessions=SessionManager(db, tokens),
        accounts=accounts,
        email_codes=email_codes,
        mailer=mailer,
        password_resets=PasswordResets(db=db, mailer=mailer, codes=email_codes),
        email_addresses=EmailAddresses(db=db, codes=email_codes, mailer=mailer),
        rate_limiter=rate_limiter,
        catalog=catalog,
        proxy=ServiceProxy(proxy_config(settings), did_resolver),
    )


async def close_context(ctx: AppContext) -> None:
    """Close what `build_context` opened, last opened first (the proxy's sessions, the repo
    writer's clean-ups, the blob store, the HTTP session, the database)."""
    await ctx.resources.aclose()
