"""QEMU launch profile (SPEC §2.2) and the pexpect harness the tests use."""
