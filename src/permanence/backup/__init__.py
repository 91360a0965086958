"""Consistent encrypted backups, restore, and the replay of the erasure journal."""
