"""The embedded SQLite index of every published message (monitor/index/store.py)."""
