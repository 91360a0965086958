"""HTTP: the API, the pages and the telephony webhooks."""
