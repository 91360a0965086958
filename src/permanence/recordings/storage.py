"""The store recordings are kept in: ``permanence.filestore`` (a core module, since staff
attestations, rights packages and backups keep their encrypted files there too). This path is
kept for the modules that still import it."""

from permanence.filestore import LocalStore, RecordingStore, storage_key, store_from_settings

__all__ = ["LocalStore", "RecordingStore", "storage_key", "store_from_settings"]
