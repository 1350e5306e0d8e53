"""``gpu-bridge-host``: GPU discovery on the host and the bridge side of SPEC §9.4/§9.5.

``devices`` finds GPUs (the two mock GPUs, or NVML through ``pynvml``, imported only when asked),
``bridge`` speaks the bridge protocol over 9P TCP and executes jobs with the same reference arithmetic
as the mock backend (:mod:`nine_door.gpu.arith`), ``cli`` is the console script.
"""
