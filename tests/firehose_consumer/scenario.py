"""A reproducible stream of mixed repository activity, and the index it must produce.

`publish_scenario` drives SimRepos on a FakeHost: check-ins with companion posts, moves, deletes,
post deletions, unrelated posts (also from accounts that never check in), deactivations and
reactivations, and account deletions. No account commits while inactive, as a PDS behaves.
`expected_index` derives the ground truth from the repositories' final state alone, so it does
not share logic with the consumer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.firehose_consumer.fakenet import (
    CHECKIN,
    POST,
    Network,
    SimRepo,
    checkin_record,
    post_record,
)

CITIES = [
    (48_856_600, 2_352_200),
    (51_507_400, -127_800),
    (40_712_800, -74_006_000),
    (35_676_200, 139_650_300),
    (-33_868_800, 151_209_300),
    (45_764_000, 4_835_700),
]

IndexTruth = dict[tuple[str, str], tuple[str, bool, bool]]  # (did, rkey) -> (cid, visible, post)


@dataclass
class Scenario:
    repos: list[SimRepo]
    bystanders: list[SimRepo]
    active: dict[str, bool] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    last_seq: int = 0


def _point(rng: random.Random) -> tuple[int, int]:
    lat, lon = rng.choice(CITIES)
    return lat + rng.randint(-20_000, 20_000), lon + rng.randint(-20_000, 20_000)


async def new_scenario(network: Network, repos: int, bystanders: int) -> Scenario:
    made = [await network.new_repo() for _ in range(repos)]
    others = [await network.new_repo() for _ in range(bystanders)]
    return Scenario(made, others, {r.did: True for r in made})


async def publish_events(network: Network, scenario: Scenario, count: int, seed: int) -> int:
    """Publish `count` more events; returns the last seq."""
    rng = random.Random(seed)
    for _ in range(count):
        scenario.last_seq = await _one_event(network, scenario, rng)
    return scenario.last_seq


async def _one_event(network: Network, scenario: Scenario, rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.15 and scenario.bystanders:
        repo = rng.choice(scenario.bystanders)
        rkey = repo.clock.next_str()
        return await network.commit(
            repo, repo.commit([("create", f"{POST}/{rkey}", post_record("hi"))])
        )
    live = [r for r in scenario.repos if r.did not in scenario.deleted]
    repo = rng.choice(live)
    if not scenario.active[repo.did]:
        scenario.active[repo.did] = True
        return await network.host.account(repo.did, True)
    checkins = sorted(repo.checkin_keys())
    if roll < 0.20:
        scenario.active[repo.did] = False
        return await network.host.account(repo.did, False, rng.choice(["deactivated", "takendown"]))
    if roll < 0.202 and len(live) > 2:
        scenario.deleted.add(repo.did)
        return await network.host.account(repo.did, False, "deleted")
    if roll < 0.30 and checkins:
        rkey = rng.choice(checkins)
        post = repo.records.get(f"{POST}/{rkey}")
        record = checkin_record(*_point(rng), "Moved", did=repo.did, rkey=rkey, post_cid=post)
        return await network.commit(repo, repo.commit([("update", f"{CHECKIN}/{rkey}", record)]))
    if roll < 0.36 and checkins:
        rkey = rng.choice(checkins)
        return await network.commit(repo, repo.commit([("delete", f"{CHECKIN}/{rkey}", None)]))
    if roll < 0.40 and checkins and f"{POST}/{checkins[0]}" in repo.records:
        return await network.commit(repo, repo.commit([("delete", f"{POST}/{checkins[0]}", None)]))
    if roll < 0.55:
        rkey = repo.clock.next_str()
        return await network.commit(
            repo, repo.commit([("create", f"{POST}/{rkey}", post_record("x"))])
        )
    _, body = repo.checkin_with_post(*_point(rng), f"Spot {rng.randrange(10_000)}")
    return await network.commit(repo, body)


def expected_index(scenario: Scenario) -> IndexTruth:
    truth: IndexTruth = {}
    for repo in scenario.repos:
        if repo.did in scenario.deleted:
            continue
        for rkey in repo.checkin_keys():
            cid = str(repo.records[f"{CHECKIN}/{rkey}"])
            has_post = f"{POST}/{rkey}" in repo.records
            truth[(repo.did, rkey)] = (cid, scenario.active[repo.did], has_post)
    return truth


def index_view(rows: dict[tuple[str, str], dict[str, object]]) -> IndexTruth:
    return {
        key: (str(row["cid"]), bool(row["visible"]), bool(row["post_exists"]))
        for key, row in rows.items()
    }
