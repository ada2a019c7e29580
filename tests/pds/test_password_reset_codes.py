"""`pds.password_reset` on a real migrated database, with an injected clock: expiry to the
millisecond, sweeping, replacement, code collisions, single use, and the code format."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore.xrpc import InvalidRequest
from pds.auth import passwords
from pds.db import accounts as account_queries
from pds.db import email_tokens
from pds.db.engine import Database
from pds.email_codes import TOKEN_ALPHABET, TOKEN_TTL_MS, EmailCodes, canonical_token, new_token
from pds.mailer import LogMailer
from pds.password_reset import PasswordResets
from tests.pds.code_support import Clock


@pytest.fixture
def mail(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Codes mailed so far, oldest first."""
    caplog.set_level(logging.WARNING, logger="pds.mailer")
    codes: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            codes.append(record.getMessage().rsplit(": ", 1)[1])

    handler = Collect()
    logging.getLogger("pds.mailer").addHandler(handler)
    yield codes
    logging.getLogger("pds.mailer").removeHandler(handler)


async def add_account(db: Database, name: str) -> str:
    did = f"did:plc:{name:a<24}"
    async with db.transaction() as conn:
        await account_queries.insert_account(
            conn,
            did=did,
            handle=f"{name}.test",
            email=f"{name}@example.com",
            password_scrypt=passwords.hash_password("original-password"),
            signing_key=b"\x01" * 32,
            now=0,
        )
        await account_queries.insert_refresh_token(
            conn, token_id=f"{name}-refresh", did=did, expires_at=2**62, app_password_name=None
        )
    return did


async def password_is(db: Database, did: str, password: str) -> bool:
    async with db.read() as conn:
        account = await account_queries.get_account(conn, did)
    assert account is not None
    return passwords.verify_password(password, account.password_scrypt)


async def refresh_token_kept(db: Database, token_id: str) -> bool:
    async with db.read() as conn:
        return await account_queries.get_refresh_token(conn, token_id) is not None


def error_of(caught: pytest.ExceptionInfo[InvalidRequest]) -> str:
    return caught.value.error


async def test_a_code_works_until_the_last_millisecond_of_its_ttl(
    db: Database, mail: list[str]
) -> None:
    clock = Clock()
    resets = PasswordResets(db=db, mailer=LogMailer(), codes=EmailCodes(db, clock=clock))
    alice, bob = await add_account(db, "alice"), await add_account(db, "bob")
    await resets.request("Alice@Example.com ")
    clock.advance_ms(TOKEN_TTL_MS - 1)
    assert await resets.reset(mail[-1], "alice-new-password") == alice
    assert await password_is(db, alice, "alice-new-password")
    assert not await refresh_token_kept(db, "alice-refresh")
    assert await refresh_token_kept(db, "bob-refresh")
    assert await password_is(db, bob, "original-password")


async def test_a_code_expires_at_its_ttl_and_is_not_spent_by_trying(
    db: Database, mail: list[str]
) -> None:
    clock = Clock()
    resets = PasswordResets(db=db, mailer=LogMailer(), codes=EmailCodes(db, clock=clock))
    alice = await add_account(db, "alice")
    await resets.request("alice@example.com")
    clock.advance_ms(TOKEN_TTL_MS)
    for _ in range(2):
        with pytest.raises(InvalidRequest) as caught:
            await resets.reset(mail[-1], "too-late")
        assert error_of(caught) == "ExpiredToken"
    assert await password_is(db, alice, "original-password")
    assert await refresh_token_kept(db, "alice-refresh")


async def test_expired_codes_are_swept_by_the_next_request(db: Database, mail: list[str]) -> None:
    clock = Clock()
    resets = PasswordResets(db=db, mailer=LogMailer(), codes=EmailCodes(db, clock=clock))
    await add_account(db, "alice")
    await add_account(db, "bob")
    await resets.request("alice@example.com")
    alice_code = mail[-1]
    clock.advance_ms(TOKEN_TTL_MS + 1)
    await resets.request("bob@example.com")
    with pytest.raises(InvalidRequest) as caught:
        await resets.reset(alice_code, "too-late")
    assert error_of(caught) == "InvalidToken"  # gone, not just expired
    await resets.reset(mail[-1], "bob-new-password")


async def test_a_code_is_single_use_and_replaced_by_a_new_request(
    db: Database, mail: list[str]
) -> None:
    resets = PasswordResets(db=db, mailer=LogMailer(), codes=EmailCodes(db, clock=Clock()))
    alice = await add_account(db, "alice")
    await resets.request("alice@example.com")
    await resets.request("alice@example.com")
    first, second = mail[-2:]
    with pytest.raises(InvalidRequest) as replaced:
        await resets.reset(first, "from-the-first")
    assert error_of(replaced) == "InvalidToken"
    await resets.reset(second.replace("-", "").lower(), "from-the-second")
    with pytest.raises(InvalidRequest) as reused:
        await resets.reset(second, "once-more")
    assert error_of(reused) == "InvalidToken"
    assert await password_is(db, alice, "from-the-second")


async def test_a_drawn_code_that_is_live_elsewhere_is_drawn_again(
    db: Database, mail: list[str]
) -> None:
    draws = iter(["AAAAA-AAAAA", "AAAAA-AAAAA", "AAAAA-AAAAA", "BBBBB-BBBBB"])
    codes = EmailCodes(db, clock=Clock(), token_source=lambda: next(draws))
    resets = PasswordResets(db=db, mailer=LogMailer(), codes=codes)
    alice, bob = await add_account(db, "alice"), await add_account(db, "bob")
    await resets.request("alice@example.com")
    await resets.request("bob@example.com")
    assert mail == ["AAAAA-AAAAA", "BBBBB-BBBBB"]
    assert await resets.reset("bbbbb bbbbb", "bob-new-password") == bob
    assert await resets.reset("aaaaa-aaaaa", "alice-new-password") == alice


async def test_deleting_the_account_deletes_its_code(db: Database, mail: list[str]) -> None:
    resets = PasswordResets(db=db, mailer=LogMailer(), codes=EmailCodes(db, clock=Clock()))
    alice = await add_account(db, "alice")
    await resets.request("alice@example.com")
    async with db.transaction() as conn:
        await account_queries.delete_account_rows(conn, alice)
    with pytest.raises(InvalidRequest) as caught:
        await resets.reset(mail[-1], "for-a-ghost")
    assert error_of(caught) == "InvalidToken"
    async with db.read() as conn:
        assert not await email_tokens.token_taken(
            conn, email_tokens.Purpose.RESET_PASSWORD, mail[-1]
        )


async def test_an_account_without_email_gets_no_code(db: Database, mail: list[str]) -> None:
    resets = PasswordResets(db=db, mailer=LogMailer(), codes=EmailCodes(db, clock=Clock()))
    with pytest.raises(InvalidRequest) as caught:
        await resets.request("nobody@example.com")
    assert (error_of(caught), str(caught.value)) == (
        "InvalidRequest",
        "account does not have an email address",
    )
    assert mail == []


# -- the code format --------------------------------------------------------------------------
def test_new_codes_have_fifty_random_bits_in_canonical_form() -> None:
    codes = {new_token() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert (len(code), code[5]) == (11, "-")
        assert set(code.replace("-", "")) <= set(TOKEN_ALPHABET)
        assert canonical_token(code) == code


@given(
    code=st.text(alphabet=TOKEN_ALPHABET, min_size=10, max_size=10),
    separators=st.lists(st.sampled_from(["", "-", " ", "\t"]), min_size=11, max_size=11),
    lower=st.lists(st.booleans(), min_size=10, max_size=10),
)
def test_typed_codes_match_whatever_their_case_dashes_and_spaces(
    code: str, separators: list[str], lower: list[bool]
) -> None:
    letters = [ch.lower() if low else ch for ch, low in zip(code, lower, strict=True)]
    typed = "".join(sep + ch for sep, ch in zip(separators, letters, strict=False))
    typed += separators[-1]
    assert canonical_token(typed) == f"{code[:5]}-{code[5:]}"


@given(st.text(max_size=40))
def test_any_text_is_either_rejected_or_a_canonical_code(text: str) -> None:
    result = canonical_token(text)
    compact = "".join(ch for ch in text if ch not in "- \t\r\n")
    is_code = (
        compact.isascii() and len(compact) == 10 and set(compact.upper()) <= set(TOKEN_ALPHABET)
    )
    compact = compact.upper()
    assert result == (f"{compact[:5]}-{compact[5:]}" if is_code else None)


@pytest.mark.parametrize(
    "text", ["AAAAA-AAAA", "AAAAA-AAAAAA", "AAAAA-AAAA1", "AAAAA_AAAAA", "", "ßAAAA-AAAA"]
)
def test_near_misses_are_not_codes(text: str) -> None:
    assert canonical_token(text) is None
