"""DAG-CBOR throughput: cbrrr, libipld and cbor2, plus our strict `atcore.dagcbor` wrapper.

Workloads are what the services push through the codec:
  record   a Bluesky post (facets, image embed) and a Skyspot check-in (place, decimal-string
           coordinates, photo blob refs): PDS writes, firehose consumer record decoding
  frame    a firehose `#commit` frame: header + body with a ~20 KB `blocks` CAR and three ops
  mst      an MST node with 16 entries (repository writes and proofs)
Plus the JSON form (`atcore.datajson` vs cbrrr's C `atjson_mode`) and CAR reading.

Subjects, and what each one checks:
  cbrrr            C, canonical encoder, strict decoder (floats and u64 slip through)
  atcore.dagcbor   cbrrr + CID validation + the no-float / int64 rules of atproto
  libipld          Rust; decodes links as plain `bytes` (links and byte strings become
                   indistinguishable) and encodes any `bytes` that parse as a CID as a link
  cbor2            C; `canonical=True` + tag 42 hooks; NOT a DAG-CBOR validator on decode

Run: `.venv/bin/python -m scripts.bench._codecs [--quick]`
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Sequence
from typing import Any, Final

import cbor2
import cbrrr
import libipld

from atcore import car, dagcbor
from atcore.cid import CID
from atcore.datajson import block_to_json, data_to_json, json_to_data
from scripts.bench._util import Measurement, ops_per_second, print_table

Bench = Callable[[], object]
BLOCKS_TARGET: Final = 20_000  # bytes of CAR in the frame's `blocks` field


def _cid(seed: str, *, raw: bool = False) -> CID:
    data = seed.encode()
    return CID.for_raw(data) if raw else CID.for_dag_cbor(data)


def _blob(seed: str, mime: str, size: int) -> dict[str, Any]:
    return {"$type": "blob", "ref": _cid(seed, raw=True), "mimeType": mime, "size": size}


def post_record() -> dict[str, Any]:
    text = "Coffee at the top of Montmartre with @alice.bsky.social — view is unreal #paris #sunset"
    return {
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": "2024-06-01T18:42:07.123Z",
        "langs": ["en", "fr"],
        "facets": [
            {
                "index": {"byteStart": 38, "byteEnd": 56},
                "features": [
                    {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:" + "a" * 24}
                ],
            },
            {
                "index": {"byteStart": 77, "byteEnd": 83},
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "paris"}],
            },
        ],
        "embed": {
            "$type": "app.bsky.embed.images",
            "images": [
                {
                    "alt": "Sunset over the roofs of Paris",
                    "image": _blob("photo-1", "image/jpeg", 948_213),
                    "aspectRatio": {"width": 2000, "height": 1500},
                }
            ],
        },
    }


def checkin_record() -> dict[str, Any]:
    return {
        "$type": "app.skyspot.checkin",
        "text": "Best croissant in the 18th, no contest.",
        "createdAt": "2024-06-02T07:15:00.000Z",
        "place": {
            "name": "Boulangerie Montmartre",
            "category": "bakery",
            "address": {"locality": "Paris", "country": "FR", "postalCode": "75018"},
            "geo": {"latitude": "48.886705", "longitude": "2.343104", "accuracyM": 12},
        },
        "photos": [
            {"alt": "croissant", "image": _blob("croissant", "image/jpeg", 412_001)},
            {"alt": "shop front", "image": _blob("front", "image/webp", 220_480)},
        ],
        "langs": ["en"],
    }


def commit_frame_parts() -> tuple[dict[str, Any], dict[str, Any]]:
    records = [post_record(), checkin_record()]
    blocks = [dagcbor.cid_of(record) for record in records]
    blocks += [dagcbor.cid_of(mst_node(seed=index)) for index in range(4)]
    car_bytes = car.write_car([blocks[0][0]], blocks)
    while len(car_bytes) < BLOCKS_TARGET:  # pad with more MST nodes up to the target size
        blocks.append(dagcbor.cid_of(mst_node(seed=len(blocks))))
        car_bytes = car.write_car([blocks[0][0]], blocks)
    ops = [
        {"action": "create", "path": f"app.skyspot.checkin/3kz{index}abcdefgh", "cid": cid}
        for index, (cid, _block) in enumerate(blocks[:3])
    ]
    body = {
        "seq": 1_234_567,
        "rebase": False,
        "tooBig": False,
        "repo": "did:plc:" + "b" * 24,
        "commit": _cid("commit"),
        "rev": "3kzabcdefgh22",
        "since": "3kzabcdefgh2a",
        "blocks": car_bytes,
        "ops": ops,
        "blobs": [],
        "prevData": _cid("prev"),
        "time": "2024-06-02T07:15:01.002Z",
    }
    return {"op": 1, "t": "#commit"}, body


def mst_node(*, seed: int = 0, entries: int = 16) -> dict[str, Any]:
    entry_list = []
    for index in range(entries):
        suffix = f"{seed:04d}{index:04d}".encode()
        entry_list.append(
            {
                "k": b"app.skyspot.checkin/3kz" + suffix if index == 0 else suffix,
                "p": 0 if index == 0 else 24,
                "t": _cid(f"sub{seed}-{index}") if index % 4 == 0 else None,
                "v": _cid(f"rec{seed}-{index}"),
            }
        )
    return {"e": entry_list, "l": _cid(f"left{seed}")}


# -- per-library views of the same value ------------------------------------------------------


def _convert_links(value: Any, convert: Callable[[CID], Any]) -> Any:
    if isinstance(value, dict):
        return {key: _convert_links(item, convert) for key, item in value.items()}
    if isinstance(value, list):
        return [_convert_links(item, convert) for item in value]
    if isinstance(value, CID):
        return convert(value)
    return value


def _cbor2_default(encoder: Any, value: Any) -> None:
    encoder.encode(cbor2.CBORTag(42, b"\x00" + value.cid_bytes))


def _cbor2_tag_hook(*args: Any) -> Any:
    tag = next(arg for arg in args if isinstance(arg, cbor2.CBORTag))  # signature varies by build
    return CID(tag.value[1:]) if tag.tag == 42 else tag


def _cbor2_decode_multi(data: bytes) -> list[Any]:
    stream = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(stream, tag_hook=_cbor2_tag_hook)
    values = []
    while stream.tell() < len(data):
        values.append(decoder.decode())
    return values


def _encoders(value: Any) -> dict[str, Bench]:
    plain = _convert_links(value, lambda cid: cbrrr.CID(cid.cid_bytes))
    as_bytes = _convert_links(value, lambda cid: cid.cid_bytes)
    return {
        "cbrrr": lambda: cbrrr.encode_dag_cbor(plain),
        "atcore.dagcbor": lambda: dagcbor.encode(value),
        "libipld": lambda: libipld.encode_dag_cbor(as_bytes),
        "cbor2 (canonical)": lambda: cbor2.dumps(value, canonical=True, default=_cbor2_default),
    }


def _decoders(block: bytes) -> dict[str, Bench]:
    return {
        "cbrrr": lambda: cbrrr.decode_dag_cbor(block),
        "atcore.dagcbor": lambda: dagcbor.decode(block),
        "libipld": lambda: libipld.decode_dag_cbor(block),
        "cbor2 (not validating)": lambda: cbor2.loads(block, tag_hook=_cbor2_tag_hook),
    }


def _frame_decoders(frame: bytes) -> dict[str, Bench]:
    return {
        "atcore.dagcbor header only": lambda: next(dagcbor.iter_decode_multi(frame)),
        "cbrrr": lambda: list(cbrrr.decode_multi_dag_cbor_in_violation_of_the_spec(frame)),
        "atcore.dagcbor": lambda: dagcbor.decode_multi(frame),
        "libipld": lambda: libipld.decode_dag_cbor_multi(frame),
        "cbor2 (not validating)": lambda: _cbor2_decode_multi(frame),
    }


def _json_cases(record: dict[str, Any]) -> dict[str, dict[str, Bench]]:
    block = dagcbor.encode(record)
    obj = data_to_json(record)
    return {
        "post: block -> JSON form": {
            "cbrrr": lambda: cbrrr.decode_dag_cbor(block, atjson_mode=True),
            "atcore.datajson.block_to_json": lambda: block_to_json(block),
            "atcore decode + data_to_json": lambda: data_to_json(dagcbor.decode(block)),
        },
        "post: JSON form -> block": {
            "cbrrr": lambda: cbrrr.encode_dag_cbor(obj, atjson_mode=True),
            "atcore json_to_data + encode": lambda: dagcbor.encode(json_to_data(obj)),
        },
    }


def _car_cases() -> dict[str, dict[str, Bench]]:
    blocks = [dagcbor.cid_of(mst_node(seed=index, entries=8)) for index in range(1000)]
    data = car.write_car([blocks[0][0]], blocks)
    return {
        "CAR read (1000 MST blocks)": {
            "atcore.car verify": lambda: car.read_car(data),
            "atcore.car no verify": lambda: car.read_car(data, verify=False),
            "libipld (decodes blocks)": lambda: libipld.decode_car(data),
        },
        "CAR write (1000 MST blocks)": {"atcore.car": lambda: car.write_car([], blocks)},
    }


def cases() -> dict[str, dict[str, Bench]]:
    """Every task mapped to its subjects."""
    header, body = commit_frame_parts()
    frame = dagcbor.encode(header) + dagcbor.encode(body)
    out: dict[str, dict[str, Bench]] = {}
    for name, value in (
        ("post", post_record()),
        ("check-in", checkin_record()),
        ("MST node", mst_node()),
    ):
        out[f"{name}: encode"] = _encoders(value)
        out[f"{name}: decode"] = _decoders(dagcbor.encode(value))
    out[f"#commit frame ({len(frame) // 1000} KB): encode body"] = _encoders(body)
    out[f"#commit frame ({len(frame) // 1000} KB): decode header+body"] = _frame_decoders(frame)
    out.update(_json_cases(post_record()))
    out.update(_car_cases())
    return out


def run(quick: bool) -> list[Measurement]:
    """Measure every case; `quick` runs each for a few milliseconds (a smoke run, < 2 s)."""
    min_seconds, repeats = (0.005, 1) if quick else (0.3, 3)
    rows: list[Measurement] = []
    for task, subjects in cases().items():
        for subject, fn in subjects.items():
            ops = ops_per_second(fn, min_seconds=min_seconds, repeats=repeats)
            rows.append(Measurement(task, subject, ops))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DAG-CBOR codec throughput")
    parser.add_argument("--quick", action="store_true", help="a few milliseconds per case")
    args = parser.parse_args(argv)
    print_table(run(args.quick), baseline="cbrrr")


if __name__ == "__main__":
    main()
