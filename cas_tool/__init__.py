"""``cas-tool``: pack, sign, verify, push and fetch content-addressed updates (SPEC §13.5). Host only."""
