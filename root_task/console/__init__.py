"""The console shared by serial and TCP (SPEC §10)."""
