"""Art. 30 records and automated compliance checks."""
