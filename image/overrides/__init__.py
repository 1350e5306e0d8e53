"""Guest-only stand-ins for third-party modules, swapped in by image/stage.py (see GUEST_OVERRIDES).

These files are never imported on the host; they are compiled into the image in place of the named
module so that its import closure (and the payload) stays small.
"""
