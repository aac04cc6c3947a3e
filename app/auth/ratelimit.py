"""Failed logins counted per client address, in SQLite so every worker shares them.

Each address has a window that opens with its first attempt. An attempt is
counted before its password is checked (reserved) and given back when the
password proves right, so however many arrive in parallel, no more than
``max_failures`` wrong passwords per address are ever checked in a window;
beyond that, logins from the address are refused until the window closes.
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

    def reserve(self, address):
        """Count a login attempt from ``address`` before its password is checked.

        Return 0 when it may go ahead, else the seconds until the window closes
        (and count nothing). The check and the count are one statement, so
        parallel attempts cannot slip past the limit together.
        """
        now = time.time()
        connection = self.connect()
        try:
            with connection:
                connection.execute(
                    "DELETE FROM failures WHERE window_start <= ?",
                    (now - self.window,),
                )
                counted = connection.execute(
                    "INSERT INTO failures (address, window_start, count)"
                    " VALUES (?, ?, 1) ON CONFLICT (address)"
                    " DO UPDATE SET count = count + 1 WHERE count < ?",
                    (address, now, self.max_failures),
                ).rowcount
                if counted:
                    return 0
                (window_start,) = connection.execute(
                    "SELECT window_start FROM failures WHERE address = ?", (address,)
                ).fetchone()
        finally:
            connection.close()
        return max(int(window_start + self.window - now) + 1, 1)

    def release(self, address):
        """Give back the attempt ``reserve`` counted: its password was right."""
        connection = self.connect()
        try:
            with connection:
                connection.execute(
                    "UPDATE failures SET count = count - 1"
                    " WHERE address = ? AND count > 0",
                    (address,),
                )
                connection.execute(
                    "DELETE FROM failures WHERE address = ? AND count <= 0",
                    (address,),
                )
        finally:
            connection.close()
