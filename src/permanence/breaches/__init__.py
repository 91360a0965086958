"""The breach register (Art. 33(5)): clocks, scope from the audit log, notifications."""
