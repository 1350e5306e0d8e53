"""The root task (PID 1 in the VM, ``cohesix-host`` on the host): boot transcript, event pump, consoles.

A regular package rather than a namespace package: resolving a namespace package scans every
``sys.path`` entry, which the guest pays for at boot.
"""
