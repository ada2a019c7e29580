"""Seeding a PDS with realistic check-ins (`scripts/seed`).

- `plan`: accounts and check-ins derived from the seed alone (handles, passwords, record keys);
- `places`: population-weighted world cities, points jittered within them, venue names;
- `images`: generated placeholder JPEGs with honest alt text;
- `runner`: finding what exists, then writing what is missing concurrently, rate-limited.
"""
