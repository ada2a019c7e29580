"""A local did:plc directory (the plc.directory HTTP API) for the embedded stack and the tests.

`create_app(settings)` builds the aiohttp application; `python -m pds.plc` serves it. The did:plc
rules themselves (operations, signatures, chain validation) live in `atcore.identity`.
"""
