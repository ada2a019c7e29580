"""`pds.email_codes` and `pds.email_address` on a real migrated database, with an injected clock:
every purpose's codes are bound to their account and purpose, expire at their TTL to the
millisecond, work once, are replaced by a re-request, and an email change forgets them all."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore.syntax import Did
from atcore.xrpc import InvalidRequest
from pds.auth import passwords
from pds.db import accounts as account_queries
from pds.db.email_tokens import Purpose
from pds.db.engine import Database
from pds.email_address import EMAIL_TAKEN_MESSAGE, EmailAddresses
from pds.email_codes import TOKEN_TTL_MS, EmailCodes, canonical_token
from pds.mailer import LogMailer
from tests.pds.code_support import T0, Clock

ALL_PURPOSES = list(Purpose)
DID_BOUND = [p for p in Purpose if p is not Purpose.RESET_PASSWORD]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def codes(db: Database, clock: Clock) -> EmailCodes:
    return EmailCodes(db, clock=clock)


@pytest.fixture
def addresses(db: Database, codes: EmailCodes, clock: Clock) -> EmailAddresses:
    return EmailAddresses(db=db, codes=codes, mailer=LogMailer(), clock=clock)


@pytest.fixture
def mail(caplog: pytest.LogCaptureFixture) -> Iterator[list[tuple[str, str]]]:
    """(message without the code, code) of every mail so far, oldest first."""
    caplog.set_level(logging.WARNING, logger="pds.mailer")
    sent: list[tuple[str, str]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text, code = record.getMessage().rsplit(": ", 1)
            sent.append((text, code))

    handler = Collect()
    logging.getLogger("pds.mailer").addHandler(handler)
    yield sent
    logging.getLogger("pds.mailer").removeHandler(handler)


async def add_account(
    db: Database, name: str, *, confirmed: bool = False, with_email: bool = True
) -> Did:
    did = Did(f"did:plc:{name:a<24}")
    async with db.transaction() as conn:
        await account_queries.insert_account(
            conn,
            did=did,
            handle=f"{name}.test",
            email=f"{name}@example.com" if with_email else None,
            password_scrypt=passwords.hash_password("original-password"),
            signing_key=b"\x01" * 32,
            now=0,
        )
        if confirmed:
            await account_queries.set_email_confirmed_at(conn, did, 1)
    return did


async def account(db: Database, did: Did) -> account_queries.AccountRow:
    async with db.read() as conn:
        row = await account_queries.get_account(conn, did)
    assert row is not None
    return row


async def error_of(call: Awaitable[object]) -> str:
    with pytest.raises(InvalidRequest) as caught:
        await call
    return caught.value.error


# -- the store --------------------------------------------------------------------------------
@pytest.mark.parametrize("purpose", DID_BOUND)
async def test_a_code_works_once_until_the_last_millisecond(
    db: Database, codes: EmailCodes, clock: Clock, purpose: Purpose
) -> None:
    alice = await add_account(db, "alice")
    code = await codes.issue(alice, purpose)
    clock.advance_ms(TOKEN_TTL_MS - 1)
    await codes.use(alice, purpose, code.lower().replace("-", " "))
    assert await error_of(codes.use(alice, purpose, code)) == "InvalidToken"


@pytest.mark.parametrize("purpose", DID_BOUND)
async def test_a_code_expires_at_its_ttl_and_trying_does_not_spend_it(
    db: Database, codes: EmailCodes, clock: Clock, purpose: Purpose
) -> None:
    alice = await add_account(db, "alice")
    code = await codes.issue(alice, purpose)
    clock.advance_ms(TOKEN_TTL_MS)
    for _ in range(2):
        assert await error_of(codes.use(alice, purpose, code)) == "ExpiredToken"
    clock.advance_ms(-1)  # the row is still there: a clock a millisecond earlier accepts it
    await codes.use(alice, purpose, code)


@pytest.mark.parametrize("purpose", DID_BOUND)
async def test_a_re_request_replaces_the_code(
    db: Database, codes: EmailCodes, purpose: Purpose
) -> None:
    alice = await add_account(db, "alice")
    first = await codes.issue(alice, purpose)
    second = await codes.issue(alice, purpose)
    assert await error_of(codes.use(alice, purpose, first)) == "InvalidToken"
    await codes.use(alice, purpose, second)


async def test_a_code_is_bound_to_its_account_and_purpose(db: Database, codes: EmailCodes) -> None:
    alice, bob = await add_account(db, "alice"), await add_account(db, "bob")
    code = await codes.issue(alice, Purpose.DELETE_ACCOUNT)
    assert await error_of(codes.use(bob, Purpose.DELETE_ACCOUNT, code)) == "InvalidToken"
    for other in ALL_PURPOSES:
        if other is not Purpose.DELETE_ACCOUNT:
            assert await error_of(codes.use(alice, other, code)) == "InvalidToken"
    await codes.use(alice, Purpose.DELETE_ACCOUNT, code)  # none of that spent it


async def test_purposes_are_independent(db: Database, codes: EmailCodes) -> None:
    alice = await add_account(db, "alice")
    issued = {purpose: await codes.issue(alice, purpose) for purpose in DID_BOUND}
    for purpose, code in reversed(issued.items()):
        await codes.use(alice, purpose, code)


async def test_checking_does_not_spend_and_spending_twice_fails(
    db: Database, codes: EmailCodes
) -> None:
    alice = await add_account(db, "alice")
    code = await codes.issue(alice, Purpose.PLC_OPERATION)
    canonical = await codes.check(alice, Purpose.PLC_OPERATION, code.lower())
    assert canonical == code
    assert await codes.check(alice, Purpose.PLC_OPERATION, code) == code
    await codes.spend(alice, Purpose.PLC_OPERATION, canonical)
    assert await error_of(codes.spend(alice, Purpose.PLC_OPERATION, canonical)) == "InvalidToken"


async def test_the_reset_code_names_its_account(db: Database, codes: EmailCodes) -> None:
    alice = await add_account(db, "alice")
    code = await codes.issue(alice, Purpose.RESET_PASSWORD)
    assert await codes.account_of(Purpose.RESET_PASSWORD, code) == (alice, code)
    assert await error_of(codes.account_of(Purpose.CONFIRM_EMAIL, code)) == "InvalidToken"


async def test_an_issue_sweeps_expired_codes_of_every_purpose(
    db: Database, codes: EmailCodes, clock: Clock
) -> None:
    alice, bob = await add_account(db, "alice"), await add_account(db, "bob")
    stale = await codes.issue(alice, Purpose.CONFIRM_EMAIL)
    clock.advance_ms(TOKEN_TTL_MS + 1)
    await codes.issue(bob, Purpose.PLC_OPERATION)
    clock.advance_ms(-2 * TOKEN_TTL_MS)  # even a clock that would accept it finds nothing
    assert await error_of(codes.use(alice, Purpose.CONFIRM_EMAIL, stale)) == "InvalidToken"


@given(st.text(max_size=40))
def test_reading_a_typed_code_never_crashes(text: str) -> None:
    canonical = canonical_token(text)
    assert canonical is None or canonical_token(canonical) == canonical


# -- email confirmation and change ------------------------------------------------------------
async def test_confirming_the_address(
    db: Database, addresses: EmailAddresses, mail: list[tuple[str, str]]
) -> None:
    alice = await add_account(db, "alice")
    await addresses.request_confirmation(alice)
    assert mail[-1][0] == "email confirmation code for alice@example.com"
    code = mail[-1][1]
    wrong_address = addresses.confirm(alice, "bob@example.com", code)
    assert await error_of(wrong_address) == "InvalidEmail"
    assert await error_of(addresses.confirm(alice, "not an email", code)) == "InvalidEmail"
    await addresses.confirm(alice, " Alice@Example.COM ", code)
    assert (await account(db, alice)).email_confirmed_at == int(T0 * 1000)
    again = addresses.confirm(alice, "alice@example.com", code)
    assert await error_of(again) == "InvalidToken"


async def test_an_unconfirmed_address_changes_without_a_code(
    db: Database, addresses: EmailAddresses, codes: EmailCodes, mail: list[tuple[str, str]]
) -> None:
    alice = await add_account(db, "alice")
    assert await addresses.request_update(alice) is False
    assert mail == []
    pending = await codes.issue(alice, Purpose.DELETE_ACCOUNT)
    await addresses.update(alice, "Alice.New@Example.com", None)
    row = await account(db, alice)
    assert (row.email, row.email_confirmed_at) == ("alice.new@example.com", None)
    # Codes mailed to the old address are gone.
    assert await error_of(codes.use(alice, Purpose.DELETE_ACCOUNT, pending)) == "InvalidToken"
    # A code given anyway is checked.
    assert await error_of(addresses.update(alice, "x@example.com", "AAAAA-AAAAA")) == (
        "InvalidToken"
    )


async def test_a_confirmed_address_changes_only_with_a_code_from_its_inbox(
    db: Database, addresses: EmailAddresses, mail: list[tuple[str, str]], clock: Clock
) -> None:
    alice = await add_account(db, "alice", confirmed=True)
    assert await error_of(addresses.update(alice, "new@example.com", None)) == "TokenRequired"
    assert await addresses.request_update(alice) is True
    assert mail[-1][0] == "email update code for alice@example.com"
    code = mail[-1][1]
    clock.advance_ms(TOKEN_TTL_MS)
    assert await error_of(addresses.update(alice, "new@example.com", code)) == "ExpiredToken"
    clock.advance_ms(-TOKEN_TTL_MS)
    await addresses.update(alice, "new@example.com", code)
    row = await account(db, alice)
    assert (row.email, row.email_confirmed_at) == ("new@example.com", None)
    assert await addresses.request_update(alice) is False  # the new address is unconfirmed


async def test_a_taken_address_is_refused_and_the_code_kept(
    db: Database, addresses: EmailAddresses, mail: list[tuple[str, str]]
) -> None:
    alice = await add_account(db, "alice", confirmed=True)
    await add_account(db, "bob")
    await addresses.request_update(alice)
    code = mail[-1][1]
    with pytest.raises(InvalidRequest) as caught:
        await addresses.update(alice, "BOB@example.com", code)
    assert (caught.value.error, str(caught.value)) == ("InvalidRequest", EMAIL_TAKEN_MESSAGE)
    assert (await account(db, alice)).email == "alice@example.com"
    await addresses.update(alice, "carol@example.com", code)


async def test_setting_the_same_address_keeps_it_confirmed(
    db: Database, addresses: EmailAddresses, mail: list[tuple[str, str]]
) -> None:
    alice = await add_account(db, "alice", confirmed=True)
    await addresses.request_update(alice)
    await addresses.update(alice, "ALICE@example.com", mail[-1][1])
    row = await account(db, alice)
    assert (row.email, row.email_confirmed_at) == ("alice@example.com", 1)


async def test_unsupported_addresses_and_unknown_accounts(
    db: Database, addresses: EmailAddresses
) -> None:
    alice = await add_account(db, "alice")
    for bad in ("", "no-at-sign", "a@b", "two@@example.com", "sp ace@example.com"):
        assert await error_of(addresses.update(alice, bad, None)) == "InvalidRequest"
    ghost = Did("did:plc:" + "g" * 24)
    assert await error_of(addresses.request_confirmation(ghost)) == "InvalidRequest"
    assert await error_of(addresses.request_update(ghost)) == "InvalidRequest"
    assert await error_of(addresses.confirm(ghost, "g@example.com", "AAAAA-AAAAA")) == (
        "AccountNotFound"
    )
    assert await error_of(addresses.update(ghost, "g@example.com", None)) == "InvalidRequest"


async def test_an_account_without_an_address(
    db: Database, addresses: EmailAddresses, mail: list[tuple[str, str]]
) -> None:
    dora = await add_account(db, "dora", with_email=False)
    with pytest.raises(InvalidRequest) as caught:
        await addresses.request_confirmation(dora)
    assert str(caught.value) == "account does not have an email address"
    assert await error_of(addresses.request_update(dora)) == "InvalidRequest"
    assert await error_of(addresses.confirm(dora, "dora@example.com", "AAAAA-AAAAA")) == (
        "InvalidEmail"
    )
    assert mail == []
    await addresses.update(dora, "dora@example.com", None)  # unconfirmed: no code needed
    assert (await account(db, dora)).email == "dora@example.com"
