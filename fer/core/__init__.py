"""What every layer shares and nothing heavy: FER2013's constants and the preprocessing spec, the
user-facing errors, the one `Registry` type, whole-file writes and small file helpers (read_json,
utc_now, pid_alive, sha256), the compute device, optional extras, and quieting native log lines.

The bottom layer: it imports no other fer package, and no PyTorch at import time.
"""
