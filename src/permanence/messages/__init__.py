"""Messages and appointments taken for a client, and their delivery."""
