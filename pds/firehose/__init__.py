"""The PDS firehose: `com.atproto.sync.subscribeRepos` and what feeds it.

- `events`: stored sequencer rows to wire frames (size limits enforced);
- `outbox`: a subscriber's bounded buffer and the gap-free backfill-to-live replay;
- `fanout`: the one task broadcasting new events to every subscriber;
- `crawlers`: `requestCrawl` notices to the relays in `PDS_CRAWLERS`;
- `metrics`: Prometheus instruments (`/metrics`);
- `service`: the `Firehose` service object; `app`: its wiring into the PDS application;
- `set_seq`: the operator command moving the sequence forward.
"""
