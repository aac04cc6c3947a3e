"""Failed logins counted per client address, in SQLite so every worker shares them.

Each address has a window that opens with its first failure. Once the address
has failed ``max_failures`` times within the window, logins from it are
refused until the window closes.
"""

import os
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (
    address TEXT PRIMARY KEY,
    window_start REAL NOT NULL,
    count INTEGER NOT NULL
)
"""
BUSY_TIMEOUT_SECONDS = 10


class LoginLimiter:
    """Counts failed logins per address and tells when to refuse."""

    def __init__(self, path, max_failures, window):
        self.path = path
        self.max_failures = max_failures
        self.window = window

    def connect(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS)
        connection.execute(SCHEMA)
        return connection

    def retry_after(self, address):
        """Return the seconds to wait before trying again, or 0 if allowed now."""
        if not os.path.exists(self.path):
            return 0  # no login has failed yet: nothing to open or create
        now = time.time()
        connection = self.connect()
        try:
            row = connection.execute(
                "SELECT window_start, count FROM failures WHERE address = ?",
                (address,),
            ).fetchone()
        finally:
            connection.close()
        if row is None or row[1] < self.max_failures:
            return 0
        remaining = row[0] + self.window - now
        return max(int(remaining) + 1, 0) if remaining > 0 else 0

    def record_failure(self, address):
        """Count one failed login from ``address``."""
        now = time.time()
        connection = self.connect()
        try:
            with connection:
                connection.execute(
                    "DELETE FROM failures WHERE window_start <= ?",
                    (now - self.window,),
                )
                connection.execute(
                    "INSERT INTO failures (address, window_start, count)"
                    " VALUES (?, ?, 1) ON CONFLICT (address)"
                    " DO UPDATE SET count = count + 1",
                    (address, now),
                )
        finally:
            connection.close()
